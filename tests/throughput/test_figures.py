"""``python -m bench.throughput.figures cv``: run-to-run CV per device class and case, errored runs named."""

from __future__ import annotations

from bench.io import write_json
from bench.throughput import figures
from tests.throughput.documents import bench, case, doc


def test_cv_keeps_machines_apart_and_names_errored_runs(tmp_path, capsys):
    intel = [
        write_json(
            tmp_path / f"intel{i}.json",
            {**doc([bench(case(), m, dc="cpu:Intel x2")], dc="cpu:Intel x2"), "datetime": f"t{i}"},
        )
        for i, m in enumerate((300.0, 330.0))
    ]
    amd = write_json(tmp_path / "amd.json", doc([bench(case(), 530.0, dc="cpu:AMD x2")], dc="cpu:AMD x2"))
    errored = write_json(
        tmp_path / "oom.json",
        doc(
            [],
            [{"id": "x", "case": case(batch_size=4096), "device_class": "cpu:Intel x2", "error": "out of memory"}],
            dc="cpu:Intel x2",
        ),
    )
    assert figures.main(["cv", *map(str, [*intel, amd, errored])]) == 0
    lines = capsys.readouterr().out.splitlines()
    cid = "resnet20-train-bs128-fp32-xla_off-synthetic-tensorflow"
    assert f"cpu:Intel x2/{cid}: medians [300.0, 330.0], run-to-run CV 6.73%" in lines
    assert f"cpu:AMD x2/{cid}: medians [530.0], run-to-run CV - (one run)" in lines
    assert f"cpu:Intel x2/x: left out the run in {errored}: out of memory" in lines


def test_cv_of_a_bad_file_is_one_line(tmp_path, capsys):
    f = write_json(tmp_path / "r.json", doc([bench(case(), 400.0)]))
    assert figures.main(["cv", str(f), str(f)]) == 2
    assert "given twice" in capsys.readouterr().err
