"""bench.regression.noise: the per-variant signal table from synthetic training results."""

import json

import numpy as np
import pytest

from bench.regression import noise


def _doc(seed, top1, loss, precise=None):
    evaluations = {"moving_bn": {"top1": top1, "loss": loss}}
    if precise is not None:
        evaluations["precise_bn"] = {"top1": precise, "loss": loss - 0.01}
    return {"kind": "bench.train", "status": "ok", "seed": seed, "wall_time_s": 300.0, "evaluations": evaluations}


def test_each_variant_gets_its_spread_band_and_loss_slope(tmp_path):
    for i, (t, p) in enumerate([(74.0, 75.0), (76.0, 75.2), (75.0, 75.1), (73.0, 74.9)]):
        (tmp_path / f"r{i}.json").write_text(json.dumps(_doc(i, t, 0.8 - (t - 75) * 0.02, p)))
    (tmp_path / "failed.json").write_text(json.dumps({"kind": "bench.train", "status": "failed"}))
    rows = {r["variant"]: r for r in noise.table(noise.load([str(tmp_path)]))}
    moving, precise = rows["moving_bn"], rows["precise_bn"]
    assert moving["n"] == precise["n"] == 4 and moving["minutes"] == 5.0
    assert moving["top1_sd"] > 10 * precise["top1_sd"] and moving["top1_band_pt"] > precise["top1_band_pt"]
    assert moving["top1_3sd_pt"] == pytest.approx(3 * moving["top1_sd"], abs=0.01)
    # loss is exactly linear in top-1 here: its band converts to the top-1 band
    assert moving["loss_band_as_top1_pt"] == pytest.approx(moving["top1_band_pt"], abs=0.02)
    assert "| moving_bn | 4 |" in noise.markdown(list(rows.values()))


def test_results_without_variants_count_as_the_moving_average_evaluation():
    assert noise.variants({"top1": 75.0, "loss": 0.7}) == {"moving_bn": {"top1": 75.0, "loss": 0.7}}


def test_too_few_runs_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "r.json").write_text(json.dumps(_doc(0, 75.0, 0.7)))
    assert noise.main([str(tmp_path)]) == 2 and "3 or more" in capsys.readouterr().err


def test_held_out_seeds_are_judged_by_the_band_of_the_others():
    steady = [75.0, 75.2, 74.8, 75.1, 74.9, 75.05]
    losses = [0.7 + (75 - t) * 0.01 for t in steady]
    assert noise.held_out(steady, losses)["held_out_outside"] == 0
    outlier = [*steady, 80.0]  # 5 points off a 0.15-point spread: outside the band of the others
    out = noise.held_out(outlier, [*losses, 0.65])
    assert out["held_out_outside"] >= 1 and out["held_out_worst"] > 1.0
    assert noise.held_out(steady[:3], losses[:3]) == {"held_out_outside": None, "held_out_worst": None}


def _runs(right):
    """One precise_bn evaluation per row of ``right`` (runs x images, bools), with its bits."""
    from bench.results import encode_correct

    n = right.shape[1]
    return [
        {
            "top1": 100.0 * r.mean(),
            "loss": 1.0 - r.mean(),
            "test_examples": n,
            "labels_sha256": "ab",
            "correct": encode_correct(r),
        }
        for r in right
    ]


def test_the_per_image_floor_is_the_sum_of_the_images_own_variances():
    right = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 1, 0]], dtype=bool)  # images 2 and 3 flip
    out = noise.per_image_floor(_runs(right))
    by_hand = 1.5 * (2 * (2 / 3) * (1 / 3)) * (100 / 4) ** 2  # k/(k-1) * sum p(1-p), in points squared
    assert out["floor_sd_pt"] == pytest.approx(by_hand**0.5, abs=1e-3) and out["flipping_images"] == 2
    assert out["floor_share"] == pytest.approx(round(by_hand / np.var(100 * right.mean(1), ddof=1), 2))


def test_independent_flips_are_all_floor_and_whole_run_luck_is_not():
    rng = np.random.default_rng(0)
    k, n = 40, 10_000
    rate = np.concatenate([np.ones(7000), np.zeros(1500), np.full(1500, 0.5)])
    flips = rng.random((k, n)) < rate
    independent = noise.per_image_floor(_runs(flips))
    assert 0.6 < independent["floor_share"] < 1.5 and independent["flipping_images"] == 1500
    luck = rng.random(k) < 0.5  # a lucky run gets the same 1,000 borderline images right, all together
    together = np.concatenate(
        [np.ones((k, 7000), bool), np.zeros((k, 2000), bool), np.repeat(luck[:, None], 1000, 1)], 1
    )
    shared = noise.per_image_floor(_runs(together))
    assert shared["floor_share"] == pytest.approx(1 / 1000, abs=1e-3)  # the variance is all covariance


def test_runs_that_read_other_images_or_lack_bits_have_no_floor(tmp_path):
    right = np.random.default_rng(1).random((4, 100)) < 0.7
    none = {"floor_sd_pt": None, "floor_share": None, "flipping_images": None}
    other_order = _runs(right)
    other_order[2]["labels_sha256"] = "cd"
    assert noise.per_image_floor(other_order) == none
    missing = _runs(right)
    del missing[0]["correct"]
    assert noise.per_image_floor(missing) == none
    short = _runs(right)
    short[1]["test_examples"] = 50
    assert noise.per_image_floor(short) == none
    for i, ev in enumerate(_runs(right)):
        doc = {"kind": "bench.train", "status": "ok", "seed": i, "wall_time_s": 60.0, "evaluations": {"precise_bn": ev}}
        (tmp_path / f"r{i}.json").write_text(json.dumps(doc))
    assert noise.main([str(tmp_path), "--markdown", str(tmp_path / "t.md")]) == 0
    row = (tmp_path / "t.md").read_text().splitlines()[-1]
    assert row.startswith("| precise_bn | 4 |") and row.rstrip(" |").split(" | ")[-1] == str(
        int(((right.mean(0) > 0) & (right.mean(0) < 1)).sum())
    )


def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    right = np.random.default_rng(2).random((3, 40)) < 0.7
    runs = _runs(right)
    runs[1]["correct"] = "!!not bits"
    for i, ev in enumerate(runs):
        doc = {"kind": "bench.train", "status": "ok", "seed": i, "wall_time_s": 60.0, "evaluations": {"precise_bn": ev}}
        (tmp_path / f"r{i}.json").write_text(json.dumps(doc))
    table = tmp_path / "t.md"
    cases = [
        ([str(tmp_path / "missing.json")], "result file", "does not exist"),
        ([str(tmp_path), "--markdown", str(tmp_path)], "--markdown", "is a directory"),
        ([str(tmp_path), "--markdown", str(table)], "precise_bn of seeds [0, 1, 2]", "not base64"),
    ]
    for argv, names, why in cases:
        assert noise.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and names in err and why in err and "\n" not in err
    assert not table.exists()


def _write_runs(directory, seeds, **fields):
    directory.mkdir(exist_ok=True)
    for s in seeds:
        doc = {
            **_doc(s, 75.0 + 0.1 * s, 0.7 - 0.001 * s),
            "recipe": "r",
            "dataset": "d",
            "budget": "epochs=3",
            **fields,
        }
        (directory / f"seed{s}.json").write_text(json.dumps(doc))


def test_a_run_given_twice_is_refused_not_counted_twice(tmp_path, capsys):
    _write_runs(tmp_path / "a", range(4))
    assert noise.main([str(tmp_path / "a"), str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is given twice" in err
    assert noise.main([str(tmp_path / "a"), str(tmp_path / "a" / "seed1.json")]) == 2
    _write_runs(tmp_path / "b", [2])  # a copy of seed 2's run under another name
    assert noise.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "is given twice" in err[0] and err[1].startswith("error: seed 2 is recorded twice")


@pytest.mark.parametrize(
    "field, value", [("recipe", "other"), ("dataset", "mock_cifar10_jpeg"), ("budget", "epochs=1")]
)
def test_runs_of_another_recipe_dataset_or_budget_are_refused(tmp_path, capsys, field, value):
    _write_runs(tmp_path / "a", range(4))
    _write_runs(tmp_path / "b", [9], **{field: value})
    assert noise.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{field} {value!r}" in err and "one recipe, dataset and budget" in err


def test_failed_runs_left_out_are_named(tmp_path, capsys):
    _write_runs(tmp_path / "a", range(4))
    (tmp_path / "a" / "failed.json").write_text(json.dumps({"kind": "bench.train", "status": "failed", "seed": 7}))
    assert noise.main([str(tmp_path / "a")]) == 0
    out, err = capsys.readouterr()
    assert "| moving_bn | 4 |" in out
    assert err == f"left out a run that did not finish: {tmp_path / 'a' / 'failed.json'} (seed 7, status 'failed')\n"
