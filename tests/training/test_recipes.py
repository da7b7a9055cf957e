"""Recipes as data: each matches its model and dataset, and says what the article did.
(Each recipe's own checks ran when ``register`` validated it at import.)"""

import dataclasses

import pytest

import models
from bench.errors import UsageError
from bench.training import budget, data, recipes

ALL = sorted(recipes.RECIPES)


def test_the_issue_recipes_exist():
    assert {"resnet56_cifar10", "preact_resnet164_cifar10", "fashion_resnet50", "smoke_resnet20_cifar10_jpeg"} <= set(
        ALL
    )


@pytest.mark.parametrize("name", ALL)
def test_recipe_model_fits_its_dataset(name):
    r = recipes.get(name)
    spec = models.get_spec(r.model)
    info = data.dataset_info(r.dataset)
    assert (spec.classes, tuple(spec.input_shape)) == (info.classes, info.input_shape)


def test_article_facts():
    r56 = recipes.get("resnet56_cifar10")
    assert (r56.optimizer, r56.batch_size, r56.schedule["base"]) == ({"name": "sgd", "momentum": 0.9}, 128, 0.1)
    assert [k[0] for k in r56.schedule["knots"]] == [0, 0.5, 0.75] and r56.augment.get("cutout")
    pre = recipes.get("preact_resnet164_cifar10")
    assert pre.normalization == "featurewise" and pre.augment == {"flip": True, "shift": 0.125}
    assert pre.full_budget == "epochs=100" and pre.reported["top1"] == 94.2 and "1,280" in pre.reported["provenance"]
    fm = recipes.get("fashion_resnet50")
    assert fm.optimizer == {"name": "adam"} and fm.schedule["base"] == 0.001 and fm.full_budget == "epochs=400"
    assert fm.dataset == "fashion_mnist"


def test_smoke_recipe_is_named_for_its_data():
    r = recipes.get("smoke_resnet20_cifar10_jpeg")
    assert r.dataset == "cifar10_jpeg" and r.deterministic and r.full_budget == "epochs=3"
    assert budget.lr_at(r.schedule, 1.0) == 0.0  # ends at a zero rate: less seed noise


def test_unknown_recipe():
    with pytest.raises(UsageError, match="did you mean resnet56_cifar10"):
        recipes.get("resnet56_cifar")


def test_overrides():
    r = recipes.with_overrides(recipes.get("resnet56_cifar10"), ["schedule.base=0.01", "batch_size=64", 'tta=["flip"]'])
    assert r.schedule["base"] == 0.01 and r.batch_size == 64 and r.tta == ("flip",)
    assert recipes.get("resnet56_cifar10").schedule["base"] == 0.1  # the registered recipe is untouched
    for bad in (
        ["nope=1"],
        ["batch_size"],
        ["schedule.base=-1"],
        ["augment.blur=1"],
        ["optimizer.name=rmsprop"],
        ["weight_decay=0"],
    ):  # weight decay is the model's, not a recipe field
        with pytest.raises(UsageError):
            recipes.with_overrides(recipes.get("resnet56_cifar10"), bad)


def test_overrides_the_training_code_would_ignore_or_keras_refuse_late_are_one_line_first():
    """A schedule field nothing reads was dropped unsaid; a label smoothing outside [0, 1] (NaN too)
    trained; a momentum outside [0, 1] was Keras's ValueError traceback once the data was read."""
    smoke = recipes.get("smoke_resnet20_cifar10_jpeg")
    for bad, said in (
        ["schedule.warmup=5", r"schedule field\(s\) \['warmup'\] are unknown; valid: base, knots, interpolation"],
        ["label_smoothing=2", "label_smoothing 2 is invalid; expected a number from 0 to 1"],
        ["label_smoothing=-0.1", "label_smoothing -0.1 is invalid"],
        ["label_smoothing=NaN", "label_smoothing nan is invalid"],
        ["optimizer.momentum=5", "optimizer momentum 5 is invalid; expected a number from 0 to 1"],
        ["optimizer.momentum=NaN", "optimizer momentum nan is invalid"],
        ["augment.shift=NaN", "augmentation shift nan is invalid; expected a fraction of the image size from 0 to 1"],
        ["augment.shift=1.5", "augmentation shift 1.5 is invalid"],
        ["augment.cutout=-3", "augmentation cutout -3 is invalid; expected a whole number of pixels, 0 or more"],
        ["augment.cutout=8.5", "augmentation cutout 8.5 is invalid"],
        ["augment.pad_crop=-1", "augmentation pad_crop -1 is invalid"],
    ):
        with pytest.raises(UsageError, match=said):
            recipes.with_overrides(smoke, [bad])
    with pytest.raises(UsageError, match="augmentation flip 1 is invalid; expected true or false"):
        recipes.validate(dataclasses.replace(smoke, augment={"flip": 1}))  # a recipe as written, not --set
    ok = recipes.with_overrides(
        smoke, ["label_smoothing=0", "optimizer.momentum=0.5", "augment.cutout=0", "augment.shift=0.25"]
    )
    assert ok.label_smoothing == 0 and ok.optimizer["momentum"] == 0.5
    assert ok.augment["cutout"] == 0 and ok.augment["shift"] == 0.25


def test_every_augmentation_the_pipeline_applies_has_its_values_checked():
    assert set(recipes.AUGMENT_VALUES) == set(data.AUGMENTATIONS)


def test_the_recipe_registry_imports_nothing_outside_the_standard_library():
    """noxfile.py reads the nightly recipes from the registry with nox's own Python, which has no NumPy or TensorFlow."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys; import bench.training.recipes; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'scipy', 'tensorflow', 'keras', 'models')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr
