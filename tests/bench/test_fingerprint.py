"""bench.fingerprint: what a model's fingerprint holds and how two are told apart in words."""

import keras
import pytest

import models
from bench import fingerprint


@pytest.fixture(scope="module")
def resnet20():
    return fingerprint.model_part(models.create("resnet20", input_shape=(32, 32, 3), classes=10))


def _model_fp(model_part, **env):
    return {
        "recipe": {},
        "model": model_part,
        "data": {},
        "environment": {"keras": keras.__version__, **env},
    }


def test_the_model_part_groups_layers_that_share_a_configuration(resnet20):
    layers = [name for g in resnet20["groups"] for name in g["layers"]]
    assert len(layers) == len(set(layers)) > 60 and resnet20["params"] == 274442
    assert len(resnet20["groups"]) < 20  # ResNet-20's 71 layers share a handful of configurations
    bn = [g for g in resnet20["groups"] if g["config"]["class"] == "BatchNormalization"]
    assert bn and all("name" not in g["config"] for g in bn)
    assert any(len(v) == 2 for v in resnet20["inputs"].values())  # the additions of the residual blocks


def test_one_changed_layer_is_named_with_its_old_and_new_value(resnet20):
    changed = models.create("resnet20", input_shape=(32, 32, 3), classes=10)
    layer = next(la for la in changed.layers if isinstance(la, keras.layers.BatchNormalization))
    layer.momentum = 0.5
    found = fingerprint.differences(_model_fp(resnet20), _model_fp(fingerprint.model_part(changed)))
    assert found == {"model": [f"{layer.name} momentum 0.99 -> 0.5"]}


def test_a_different_architecture_is_a_model_change(resnet20):
    other = fingerprint.model_part(models.create("resnet32", input_shape=(32, 32, 3), classes=10))
    found = fingerprint.differences(_model_fp(resnet20), _model_fp(other), limit=2)
    assert set(found) == {"model"} and found["model"][-1].startswith("and ")
    assert fingerprint.digest(_model_fp(resnet20)) != fingerprint.digest(_model_fp(other))


def test_versions_are_their_own_part_and_not_in_the_digest(resnet20):
    a, b = _model_fp(resnet20), _model_fp(resnet20, tensorflow="9.9")
    assert fingerprint.differences(a, b) == {"environment": ["tensorflow (none) -> 9.9"]}
    assert fingerprint.digest(a) == fingerprint.digest(b)


def test_a_fingerprint_reads_back_from_json_unchanged():
    fp = fingerprint.with_digest({"recipe": {"tta": ("flip",)}, "model": {}, "data": {}, "environment": {}})
    assert fp["recipe"]["tta"] == ["flip"] and fp["digest"] == fingerprint.digest(fp)


def _mock_pipes(**kw):
    from bench.training import data

    settings = dict(batch_size=8, augment={"flip": True, "pad_crop": 4}, normalization="featurewise", seed=0)
    return data.pipelines("mock_cifar10_jpeg", mock_examples=24, **{**settings, **kw})


def test_the_first_train_batch_digest_is_seed_0_training_s_first_batch_and_draws_nothing_from_it():
    import tensorflow as tf

    tf.random.set_seed(None)  # training's pipeline at data seed 0 with no global seed (another test may set one)
    pipes = _mock_pipes()
    digest = fingerprint.data_part(pipes, _Recipe())["train_first_batch"]
    images, labels = next(iter(pipes.train.as_numpy_iterator()))  # training's first epoch, after the fingerprint
    assert digest == fingerprint._batch_digest(images, labels)
    untouched = next(iter(_mock_pipes().train.as_numpy_iterator()))
    assert (images == untouched[0]).all()  # reading the digest drew nothing from training's streams


@pytest.mark.parametrize("change", [{"augment": {"flip": True}}, {"shuffle_buffer": 4}, {"augment": {}}], ids=str)
def test_a_change_to_shuffling_or_augmentation_changes_the_first_train_batch(change):
    assert fingerprint._first_train_batch(_mock_pipes(**change)) != fingerprint._first_train_batch(_mock_pipes())


def test_the_first_train_batch_digest_is_the_code_s_not_the_run_seed_s():
    from tensorflow.python.eager import context

    plain = fingerprint._first_train_batch(_mock_pipes(seed=0))
    assert fingerprint._first_train_batch(_mock_pipes(seed=7)) == plain
    keras.utils.set_random_seed(7)  # a run sets the global seed from its own; tf.data pairs op seeds with it
    try:
        assert fingerprint._first_train_batch(_mock_pipes(seed=7)) == plain and context.global_seed() == 7
    finally:
        import tensorflow as tf

        tf.random.set_seed(None)


def test_the_evaluation_probe_sees_test_time_augmentation_and_is_repeatable():
    pipes = _mock_pipes()
    flip = fingerprint.evaluation_part(pipes, _Recipe(tta=("flip",)))
    assert flip == fingerprint.evaluation_part(pipes, _Recipe(tta=("flip",)))
    assert flip != fingerprint.evaluation_part(pipes, _Recipe(tta=()))
    assert flip["probe_images"] == 16 and 0 <= flip["probe_top1"] <= 100


class _Recipe:
    def __init__(self, tta=("flip",)):
        self.tta, self.batch_size, self.augment = tta, 8, {}


def _with(fp, **parts):
    return fingerprint.with_digest({**fp, **parts})


def test_fields_a_baseline_predates_are_a_note_and_a_changed_one_is_a_change(resnet20):
    base = _with(_model_fp(resnet20), data={"test_first_batch": "a"})
    now = _with(
        base,
        data={"test_first_batch": "a", "train_first_batch": "b"},
        evaluation={"probe_top1": 10.0, "probe_loss": 2.5},
    )
    found = fingerprint.differences(base, now)
    assert found == {"unrecorded": ["data.train_first_batch", "evaluation"]}
    changes, notes = fingerprint.changes_and_notes(found)
    assert changes == {} and notes[0].startswith("not compared: data.train_first_batch, evaluation, which")
    later = _with(now, data={"test_first_batch": "a", "train_first_batch": "c"})
    assert fingerprint.differences(now, later) == {"data": ["train_first_batch b -> c"]}
    no_longer = _with(now, data={"test_first_batch": "a"})
    assert fingerprint.differences(now, no_longer) == {"unrecorded": ["data.train_first_batch"]}  # a result
    no_layer = _with(now, model={**now["model"], "groups": now["model"]["groups"][1:]})  # written before it
    assert "model" in fingerprint.differences(now, no_layer)  # a field outside those is a change either way


def test_the_probe_and_batch_digests_count_only_in_the_baseline_s_environment(resnet20):
    base = _with(_model_fp(resnet20), data={"train_first_batch": "b"}, evaluation={"probe_loss": 2.5})
    other_machine = _with(
        _model_fp(resnet20, device_class="cpu:other x2"),
        data={"train_first_batch": "c"},
        evaluation={"probe_loss": 2.6},
    )
    changes, notes = fingerprint.changes_and_notes(fingerprint.differences(base, other_machine))
    assert changes == {} and notes[0].startswith("versions differ (device_class")


def _compiled(momentum=0.9, smoothing=0.1):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=momentum, nesterov=True),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=smoothing),
    )
    return model


class _Scheduled:
    schedule = {"base": 0.2, "knots": [[0, 0.1], [0.15, 1.0], [1.0, 0.0]], "interpolation": "linear"}


class _Flat:
    schedule = {**_Scheduled.schedule, "interpolation": "step"}


def test_the_training_part_holds_what_the_code_made_of_the_recipe():
    part = fingerprint.training_part(_compiled(), _Scheduled())
    assert part["optimizer"]["momentum"] == 0.9 and "learning_rate" not in part["optimizer"]
    assert part["loss"]["label_smoothing"] == 0.1 and part["loss"]["class"] == "CategoricalCrossentropy"
    assert len(part["schedule"]) == 21 and part["schedule"]["at 0%"] == 0.02 and part["schedule"]["at 100%"] == 0.0
    other = fingerprint.differences({"training": part}, {"training": fingerprint.training_part(_compiled(), _Flat())})
    assert other["training"][0] == "schedule at 10% 0.14 -> 0.02"  # step: the first knot holds until 15 %
    base = {"recipe": {}, "model": {}, "data": {}, "training": part, "environment": {}}
    other = {**base, "training": fingerprint.training_part(_compiled(momentum=0.8, smoothing=0.0), _Scheduled())}
    assert fingerprint.differences(base, other) == {
        "training": ["loss label_smoothing 0.1 -> 0.0", "optimizer momentum 0.9 -> 0.8"]
    }


def test_every_committed_fingerprint_is_whole_and_its_digest_its_parts():
    """The integrity check (``integrity_problem``, through ``shape_problem``) passes every fingerprint
    the harness wrote, of every version: the committed results and baselines.json's entries."""
    import json
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    prints = [e.get("fingerprint") for e in json.loads((repo / "baselines.json").read_text())["accuracy"].values()]
    for path in sorted((repo / "reports").rglob("*.json")):
        doc = json.loads(path.read_text())
        if isinstance(doc, dict) and doc.get("kind") == "bench.train":
            prints.append(doc.get("fingerprint"))
    prints = [fp for fp in prints if fp is not None]
    assert len(prints) >= 13 and all(fingerprint.shape_problem(fp) is None for fp in prints)


def test_an_edited_fingerprint_is_named_edited_or_corrupt(resnet20):
    first = _with(_model_fp(resnet20))  # as the first fingerprints were: recipe, model and data
    assert fingerprint.shape_problem(first) is None
    assert fingerprint.missing(first) == ["training", "evaluation", "data.train_first_batch"]  # all today's code writes
    full = _with(first, training={"optimizer": {}}, evaluation={}, data={"train_first_batch": "b"})
    assert fingerprint.shape_problem(full) is None and fingerprint.missing(full) == []
    for edited, words in (
        ({**full, "digest": "0" * 16}, 'has digest "0000000000000000", which does not match its parts'),
        ({k: v for k, v in full.items() if k != "digest"}, "has no digest"),
        (_with({k: v for k, v in full.items() if k != "training"}), "lacks training but has evaluation"),
        (_with(full, data={}), "lacks data.train_first_batch"),
    ):
        problem = fingerprint.shape_problem(edited)
        assert problem and words in problem and problem.endswith("edited or corrupt"), problem
