"""The table a throughput run ends with (bench.throughput.summary), on hand-built result documents:
old- and new-style cases, errored and noisy ones, with and without baselines, and a document
merged from several backends. No TensorFlow needed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.throughput import summary
from bench.throughput.workload import Case
from tests.throughput.documents import DC, bench, case, doc, error, old_case, old_id  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "regression" / "fixtures" / "throughput"


def line_of(text: str, *words: str) -> str:
    """The one table line holding all of ``words`` as cells."""
    (line,) = [ln for ln in text.splitlines() if all(w in ln.split() for w in words)]
    return line


def test_a_row_shows_the_median_spread_and_the_change_against_its_baseline():
    c = case()
    base = {f"{DC}/{Case.from_dict(c).id}": {"images_per_s": 500.0}}
    out = summary.table(doc([bench(c, 450.0, q1=440.0, q3=462.5, cv=0.0234)]), base)
    header, rule, row, totals = out.splitlines()
    assert header.split()[:6] == ["model", "mode", "backend", "device", "precision", "batch"]
    assert set(rule) == {"-", " "}
    # 450 / 500 - 1 = -10 %; IQR 22.5; utilization 43.21 %; compile 3.456 s
    assert row.split() == [
        "resnet20",
        "train",
        "tensorflow",
        "cpu:Test",
        "CPU",
        "x2",
        "fp32",
        "128",
        "450.0",
        "22.50",
        "2.3%",
        "43.2",
        "3.46",
        "-10.0%",
    ]
    assert totals == f"1 case(s): 1 measured, 0 errored, 0 noisy; 1 with a baseline ({summary.JUDGED_BY})"


def test_the_change_is_signed_and_a_missing_baseline_is_a_dash():
    up, down, none = case("resnet20"), case("resnet32"), case("resnet56")
    base = {
        f"{DC}/{Case.from_dict(up).id}": {"images_per_s": 1000.0},
        f"{DC}/{Case.from_dict(down).id}": {"images_per_s": 800.0},
        f"{DC}/someone-else": {"images_per_s": 1.0},
    }
    out = summary.table(doc([bench(up, 1031.0), bench(down, 775.2), bench(none, 300.0)]), base)
    assert line_of(out, "resnet20").split()[-1] == "+3.1%"
    assert line_of(out, "resnet32").split()[-1] == "-3.1%"  # 775.2 / 800 - 1 = -0.031
    assert line_of(out, "resnet56").split()[-1] == "-"
    assert out.splitlines()[-1].endswith(f"2 with a baseline ({summary.JUDGED_BY})")
    # without baselines at all: every change is a dash and the totals do not mention them
    bare = summary.table(doc([bench(up, 1031.0)]))
    assert line_of(bare, "resnet20").split()[-1] == "-" and "baseline" not in bare.splitlines()[-1]


def test_an_old_style_case_reads_as_tensorflow_and_is_keyed_by_its_case_id():
    """A result file from before the backend axis (``xla``, no ``backend``) reads as tensorflow and
    finds its baseline under the case's id, as ``python -m bench compare`` keys it; an entry under
    the id the old file recorded is not used (compare would not use it either)."""
    c = old_case(xla="on")
    (r,) = summary.rows(doc([bench(c, 210.0)]))
    assert (r["backend"], r["compile"], r["compile_label"]) == ("tensorflow", "on", "xla_on")
    assert r["id"] == "resnet20-train-bs128-fp32-xla_on-synthetic-tensorflow"
    base = {f"{DC}/{r['id']}": {"images_per_s": 200.0}}
    row = line_of(summary.table(doc([bench(c, 210.0)]), base), "resnet20")
    assert row.split()[1:3] == ["train", "tensorflow"] and row.split()[-1] == "+5.0%"
    stale = {f"{DC}/{old_id(c)}": {"images_per_s": 200.0}}
    assert line_of(summary.table(doc([bench(c, 210.0)]), stale), "resnet20").split()[-1] == "-"


def test_errored_cases_are_rows_with_their_error_and_no_numbers():
    ok, oom = case("resnet20"), case("resnet56", batch_size=4096)
    in_benchmarks = bench(case("resnet32"), 1.0)
    in_benchmarks["extra_info"] = {
        "id": Case.from_dict(case("resnet32")).id,
        "case": case("resnet32"),
        "device_class": DC,
        "error": "out of memory: OOM\nsecond line",
    }
    d = doc(
        [bench(ok, 500.0), in_benchmarks],
        [
            error(oom, "out of memory: ResourceExhaustedError: OOM when allocating tensor"),
            error(case("resnet32"), "dup"),
        ],
    )
    out = summary.table(d, {f"{DC}/{Case.from_dict(oom).id}": {"images_per_s": 100.0}})
    row = line_of(out, "resnet56")
    assert row.split()[:8] == ["resnet56", "train", "tensorflow", "cpu:Test", "CPU", "x2", "fp32", "4096"]
    assert row.endswith("error: out of memory: ResourceExhaustedError: OOM when allocating tensor")
    cells = row.split("error:")[0].split()
    assert cells[8:] == ["-"] * 6  # images/s, IQR, CV, util, compile, vs baseline
    # the one in benchmarks and in errors is one row, its message one line
    assert line_of(out, "resnet32").endswith("error: out of memory: OOM")
    assert out.splitlines()[-1].startswith("3 case(s): 1 measured, 2 errored, 0 noisy")


def test_a_noisy_case_is_flagged_beside_its_cv():
    out = summary.table(doc([bench(case(), 400.0, cv=0.0687, noisy=True), bench(case("resnet32"), 300.0, cv=0.01)]))
    assert "6.9% noisy" in line_of(out, "resnet20")
    assert "noisy" not in line_of(out, "resnet32").split()
    assert "1 noisy" in out.splitlines()[-1]


def test_a_merged_document_from_several_backends_lists_them_side_by_side():
    d = doc(
        [
            bench(case(backend="torch"), 350.0, dc="cpu:Other CPU x4"),
            bench(case(backend="jax", compile="on"), 620.0),
            bench(case(backend="torch"), 380.0),
            bench(case(), 500.0),
            bench(case(mode="infer"), 1700.0),
        ],
        [error(case(backend="jax", precision="mixed_bf16"), "out of memory: jax")],
    )
    out = summary.table(d)
    lines = out.splitlines()[2:-1]
    # per model, mode, batch, precision and device, the backends in order: tensorflow, jax, torch
    assert [ln.split()[:3] for ln in lines] == [
        ["resnet20", "train", "torch"],
        ["resnet20", "train", "tensorflow"],
        ["resnet20", "train", "jax"],
        ["resnet20", "train", "torch"],
        ["resnet20", "train", "jax"],
        ["resnet20", "infer", "tensorflow"],
    ]
    assert "cpu:Other CPU x4" in lines[0] and "cpu:Test CPU x2" in lines[3]  # each benchmark's own device
    assert [ln.split()[-1] for ln in lines[:4]] == ["-"] * 4  # no baselines given
    # compile differs between rows (xla_off, xla_on, compile_off): it gets a column
    assert "compile" in out.splitlines()[0].split() and "compile_off" in lines[3] and "xla_on" in lines[2]
    assert "mixed_bf16" in lines[4] and lines[4].endswith("error: out of memory: jax")


def test_columns_line_up():
    out = summary.table(doc([bench(case(), 12345.6), bench(case("resnet110", batch_size=8), 9.87)]))
    header, rule, *rows, _ = out.splitlines()
    starts = [i for i, ch in enumerate(rule) if ch == "-" and (i == 0 or rule[i - 1] == " ")]
    assert len(starts) == len(header.split()) - 3  # "util %", "compile s", "vs baseline": two words each
    images = header.split().index("images/s")
    end = starts[images] + len("images/s")  # right-aligned: every value ends where the header does
    assert [r[:end].split()[-1] for r in rows] == ["9.87", "12,346"]  # resnet110 sorts before resnet20


def test_numbers_are_rounded_sensibly():
    assert [summary.rate(x) for x in (12345.6, 1700.9, 996.62, 42.567, 4.2, 0.12345, None)] == [
        "12,346",
        "1,701",
        "996.6",
        "42.57",
        "4.20",
        "0.123",
        "-",
    ]
    assert [summary.seconds(x) for x in (0.4212, 3.456, 12.34, 154.4, None)] == ["0.42", "3.46", "12.3", "154", "-"]
    assert summary.change(96.9, 100.0) == pytest.approx(-0.031)
    assert summary.change(None, 100.0) is None and summary.change(1.0, None) is None


def test_the_whole_baselines_file_is_accepted_too():
    c = case()
    whole = {"schema": 1, "throughput": {f"{DC}/{Case.from_dict(c).id}": {"images_per_s": 400.0}}, "accuracy": {}}
    assert line_of(summary.table(doc([bench(c, 500.0)]), whole), "resnet20").split()[-1] == "+25.0%"


def test_an_empty_document_says_so():
    assert summary.table(doc([])) == "no throughput results"


def test_load_baselines_absent_valid_and_unreadable(tmp_path, capsys):
    assert summary.load_baselines(tmp_path / "nope.json") is None
    entries = summary.load_baselines(FIXTURES / "baselines.json")
    assert entries and all("/" in k and v["images_per_s"] > 0 for k, v in entries.items())
    assert capsys.readouterr().err == ""
    for bad in ("baselines_corrupt.json", "baselines_bad_entry.json"):
        assert summary.load_baselines(FIXTURES / bad) is None
        err = capsys.readouterr().err
        assert err.startswith("baselines unreadable: ") and err.count("\n") == 1
    (tmp_path / "b.json").write_text(json.dumps({"schema": 99}))
    assert summary.load_baselines(tmp_path / "b.json") is None
    assert "schema" in capsys.readouterr().err


def test_a_real_result_file_tabulates():
    """The regression suite's fixture run (an errored benchmark, an entry in ``errors``), read as written."""
    d = json.loads((FIXTURES / "run_errored.json").read_text())
    out = summary.table(d, summary.load_baselines(FIXTURES / "baselines.json"))
    lines = out.splitlines()
    assert len(lines) == 2 + 3 + 1 and "996.6" in out
    assert sum("error: out of memory" in ln for ln in lines) == 2
    assert lines[-1].startswith("3 case(s): 1 measured, 2 errored")


def test_the_summary_and_the_report_import_no_tensorflow():
    """They must run where only jax or torch is installed."""
    code = (
        "import sys; import bench.throughput.summary, bench.throughput.report, bench.commands.report; "
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_the_totals_name_the_planned_cases_not_measured():
    """``-k`` dropped a planned case: the table says so rather than counting only what ran."""
    train, infer = case(mode="train"), case(mode="infer")
    d = doc([bench(infer, 100.0)])
    d["harness"]["options"] = {"cases": [Case.from_dict(train).id, Case.from_dict(infer).id]}
    assert summary.unmeasured(d) == [Case.from_dict(train).id]
    text = summary.table(d)
    assert f"1 of 2 planned case(s) not measured: {Case.from_dict(train).id}" in text.splitlines()
    d["harness"]["options"]["cases"] = [Case.from_dict(infer).id]
    assert summary.unmeasured(d) == [] and "not measured" not in summary.table(d)


def test_nothing_to_plot_is_a_line_not_an_error(tmp_path):
    """An empty shard has no case to plot: --plot says why no figure, and the run is not failed."""
    line = summary.plot_line(doc([]), str(tmp_path / "p.png"))
    assert line.startswith("cnn-bench: no figure written to") and not (tmp_path / "p.png").exists()
