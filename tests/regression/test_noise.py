"""bench.regression.noise: the per-variant signal table from synthetic training results."""

import json

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
