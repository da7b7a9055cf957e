"""``python -m bench report`` and bench.throughput.report on hand-built result files: rows read old-
and new-style cases, the ratio to tensorflow, the --by backend table and plot end to end, the
--by precision plot, and a bad --by value. No TensorFlow needed."""

from __future__ import annotations

import pytest

from bench.__main__ import main
from bench.io import write_json
from bench.throughput import report
from tests.throughput import documents
from tests.throughput.documents import DC, case, doc

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def bench(c, median, *, noisy=False, dc=DC):
    """One benchmark with the report's spread (IQR 10 % of the median), no utilization, legacy ids for old cases."""
    return documents.bench(
        c,
        median,
        q1=median * 0.95,
        q3=median * 1.05,
        cv=0.08 if noisy else 0.01,
        noisy=noisy,
        utilization=None,
        compile_s=1.0,
        dc=dc,
        bid="legacy-id" if "xla" in c else None,
    )


def by_backend(rows):
    return {(r["backend"], r["precision"], r["compile"], r["mode"]): r for r in rows}


def test_rows_carry_backend_and_compile_for_old_and_new_files():
    old = {
        "model": "resnet20",
        "mode": "train",
        "batch_size": 128,
        "precision": "fp32",
        "xla": "on",
        "data": "synthetic",
    }
    rows = report.rows([doc([bench(old, 400.0)]), doc([bench(case(backend="torch", compile="on"), 300.0)])])
    tf, torch = rows
    assert (tf["backend"], tf["compile"], tf["compile_label"], tf["median"]) == ("tensorflow", "on", "xla_on", 400.0)
    assert (torch["backend"], torch["compile"], torch["compile_label"]) == ("torch", "on", "compile_on")
    assert "xla" not in tf


def test_ratio_to_tensorflow_matches_model_mode_precision_batch_and_device():
    rows = report.rows(
        [
            doc([bench(case(), 400.0), bench(case(compile="on"), 500.0), bench(case(precision="mixed_bf16"), 800.0)]),
            doc(
                [
                    bench(case(backend="jax", compile="on"), 600.0),  # against tensorflow xla on: 600 / 500
                    bench(case(backend="torch"), 300.0),  # against tensorflow xla off: 300 / 400
                    bench(case(backend="jax", compile="auto"), 750.0),  # no tf auto: the fastest tf, 750 / 500
                    bench(case(backend="jax", precision="mixed_float16"), 900.0),  # no tf row at that precision
                    bench(case(backend="jax", batch_size=64), 450.0),  # nor at that batch
                    bench(case(backend="torch", compile="off"), 350.0, dc="gpu:Other"),  # nor on that device
                ]
            ),
        ]
    )
    ratio = {
        (r["backend"], r["precision"], r["compile"], r["batch_size"], r["device_class"]): report.ratio_to_tensorflow(
            r, rows
        )
        for r in rows
    }
    assert ratio[("jax", "fp32", "on", 128, DC)] == pytest.approx(1.2)
    assert ratio[("torch", "fp32", "off", 128, DC)] == pytest.approx(0.75)
    assert ratio[("jax", "fp32", "auto", 128, DC)] == pytest.approx(1.5)
    assert ratio[("tensorflow", "fp32", "off", 128, DC)] is None  # the reference, not compared with itself
    assert ratio[("tensorflow", "mixed_bf16", "off", 128, DC)] is None
    assert ratio[("jax", "mixed_float16", "off", 128, DC)] is None
    assert ratio[("jax", "fp32", "off", 64, DC)] is None
    assert ratio[("torch", "fp32", "off", 128, "gpu:Other")] is None


def test_backend_table_lists_each_case_with_its_ratio_and_errors():
    oom = {
        "id": "x",
        "case": case(backend="torch", batch_size=4096),
        "device_class": DC,
        "error": "out of memory: torch.OutOfMemoryError",
    }
    out = report.backend_table(
        [
            doc([bench(case(), 400.0), bench(case(mode="infer"), 1600.0)]),
            doc(
                [bench(case(backend="jax"), 520.0, noisy=True), bench(case(backend="torch", mode="infer"), 1200.0)],
                [oom],
            ),
        ]
    )
    header, _, *lines, footer = out.splitlines()
    assert header.split()[:8] == ["model", "mode", "precision", "batch", "data", "device", "backend", "compile"]
    # (mode, backend, batch); the device "cpu:Test CPU x2" takes three words
    cells = {(ln.split()[1], ln.split()[8], ln.split()[3]): ln for ln in lines}
    assert cells[("train", "tensorflow", "128")].split()[-1] == "-"
    jax = cells[("train", "jax", "128")].split()
    assert jax[-5:] == ["520.0", "52.00", "8.0%", "noisy", "1.30x"]  # 520 / 400
    assert cells[("infer", "torch", "128")].split()[-1] == "0.75x"  # 1200 / 1600
    assert cells[("train", "torch", "4096")].endswith("-  error: out of memory: torch.OutOfMemoryError")
    assert [ln.split()[1] for ln in lines] == ["train", "train", "train", "infer", "infer"]
    assert (
        footer
        == "5 case(s) on tensorflow, jax, torch, 1 errored; 2 of 2 measured non-tensorflow case(s) have a tensorflow row"
        " to compare with"
    )


def test_report_by_backend_end_to_end(tmp_path, capsys):
    tf_file = write_json(tmp_path / "tf.json", doc([bench(case(), 400.0), bench(case(mode="infer"), 1600.0)]))
    other = doc(
        [
            bench(case(backend="jax", compile="on"), 600.0),
            bench(case(backend="torch"), 300.0, noisy=True),
            bench(case(backend="torch", precision="mixed_bf16"), 310.0),
            bench(case(backend="jax", mode="infer"), 2000.0),
        ],
        [{"id": "y", "case": case(backend="jax", batch_size=8192), "device_class": DC, "error": "out of memory"}],
    )
    other_file = write_json(tmp_path / "other.json", other)
    png = tmp_path / "plots" / "by-backend.png"
    assert main(["report", "--by", "backend", str(tf_file), str(other_file), "--out", str(png)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines()[-1] == f"wrote {png}"
    assert "1.50x" in out and "0.75x" in out and "1.25x" in out  # 600/400, 300/400, 2000/1600
    assert "error: out of memory" in out
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in png.parent.iterdir()] == ["by-backend.png"]  # written atomically: no temporary left


def test_report_by_precision_is_the_default_and_reads_old_files(tmp_path, capsys):
    old = {
        "model": "resnet20",
        "mode": "train",
        "batch_size": 128,
        "precision": "fp32",
        "xla": "off",
        "data": "synthetic",
    }
    f = write_json(tmp_path / "old.json", doc([bench(old, 400.0), bench({**old, "precision": "mixed_bf16"}, 700.0)]))
    png = tmp_path / "p.png"
    assert main(["report", str(f), "--out", str(png)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["model", "mode", "backend"]  # the run's table, as --by backend prints one
    assert out[-2:] == ["2 case(s): 2 measured, 0 errored, 0 noisy", f"wrote {png}"]
    assert png.read_bytes()[:8] == PNG_MAGIC
    # a merged multi-backend set plots too
    g = write_json(tmp_path / "torch.json", doc([bench(case(backend="torch"), 300.0)]))
    assert main(["report", "--by", "precision", str(f), str(g), "--out", str(png)]) == 0


def test_a_bad_by_value_is_one_line_and_exit_2(tmp_path, capsys):
    f = write_json(tmp_path / "r.json", doc([bench(case(), 400.0)]))
    assert main(["report", "--by", "model", str(f), "--out", str(tmp_path / "x.png")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "error: --by 'model' is invalid; valid: precision, backend\n"
    assert not (tmp_path / "x.png").exists()


def test_a_file_without_results_is_a_usage_error(tmp_path, capsys):
    f = write_json(tmp_path / "empty.json", doc([]))
    assert main(["report", "--by", "backend", str(f), "--out", str(tmp_path / "x.png")]) == 2
    assert capsys.readouterr().err.startswith("error: no throughput results")


def test_the_title_wraps_to_a_narrow_figure():
    """The title names the machine and software; on a one-mode figure (6 inches) it must wrap, not
    run off both edges."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    text = "cpu:Intel(R) Xeon(R) Processor x2 | Keras 3.15.1 on tensorflow 2.21.0 / Python 3.11.7 on " * 2
    fig = plt.figure(figsize=(6, 4))
    try:
        report._suptitle(fig, text)
        lines = fig._suptitle.get_text().splitlines()
    finally:
        plt.close(fig)
    assert len(lines) > 1 and all(len(line) <= 90 for line in lines)
    assert " ".join(lines).split() == text.split()


@pytest.mark.parametrize(
    "change, words",
    [
        (
            lambda b: b["extra_info"]["images_per_s"].update(median=0, q1=0, samples=[0, 400.0]),
            "holds 0; images/s is a number above 0",
        ),
        (lambda b: b["extra_info"]["case"].update(model=20), "case: field 'model' is 20; expected a string"),
        (lambda b: b["extra_info"]["case"].update(batch_size="128"), "field 'batch_size' is '128'; expected a whole"),
    ],
)
def test_a_corrupt_case_or_median_is_one_line_not_a_crash(tmp_path, capsys, change, words):
    """A median of 0 (a ratio to it divides by zero) or a case field of the wrong type (rows sort by
    them) is refused when the file is read, whichever command reads it."""
    tf, jax = bench(case(), 400.0), bench(case(backend="jax"), 600.0)
    change(tf)
    f = write_json(tmp_path / "r.json", doc([tf, jax]))
    assert main(["report", "--by", "backend", str(f), "--out", str(tmp_path / "x.png")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and words in err, err
    assert not (tmp_path / "x.png").exists()


def _figure(monkeypatch):
    """Capture the figure ``report`` would save: {"fig": Figure}; nothing is written."""
    got = {}

    def save(fig, path, dpi=100):
        got["fig"] = fig
        return path

    monkeypatch.setattr(report, "save_figure", save)
    return got


def _bars(ax):
    """(x, height) of each bar in a panel, and its tick labels."""
    bars = [(round(p.get_x(), 6), p.get_height()) for p in ax.patches]
    return bars, [t.get_text() for t in ax.get_xticklabels()]


def test_several_runs_of_one_case_are_separate_labelled_bars(tmp_path, monkeypatch, capsys):
    files = [
        write_json(tmp_path / f"run{i}.json", doc([bench(case(), m)])) for i, m in enumerate((300.0, 330.0, 320.0))
    ]
    for i, f in enumerate(files):  # three runs: each its own time
        d = documents.doc([bench(case(), (300.0, 330.0, 320.0)[i])])
        write_json(f, {**d, "datetime": f"2026-01-0{i + 1}T00:00:00"})
    got = _figure(monkeypatch)
    assert main(["report", *map(str, files), "--out", str(tmp_path / "p.png")]) == 0
    bars, labels = _bars(got["fig"].axes[0])
    assert sorted(h for _, h in bars) == [300.0, 320.0, 330.0] and len({x for x, _ in bars}) == 3
    assert [label.split("\n")[-1] for label in labels] == ["run0.json", "run1.json", "run2.json"]


def test_bars_of_different_device_classes_are_told_apart_and_all_named(tmp_path, monkeypatch):
    intel = write_json(tmp_path / "intel.json", doc([bench(case(), 300.0, dc="cpu:Intel x2")], dc="cpu:Intel x2"))
    amd = write_json(tmp_path / "amd.json", doc([bench(case(), 500.0, dc="cpu:AMD x2")], dc="cpu:AMD x2"))
    got = _figure(monkeypatch)
    assert main(["report", str(intel), str(amd), "--out", str(tmp_path / "p.png")]) == 0
    bars, labels = _bars(got["fig"].axes[0])
    assert len({x for x, _ in bars}) == 2
    assert {label.split("\n")[2] for label in labels} == {"cpu:Intel x2", "cpu:AMD x2"}
    title = got["fig"]._suptitle.get_text()
    assert "cpu:AMD x2" in title and "cpu:Intel x2" in title


def test_one_run_given_twice_is_one_line_and_exit_2(tmp_path, capsys):
    f = write_json(tmp_path / "r.json", {**doc([bench(case(), 400.0)]), "datetime": "2026-01-01T00:00:00"})
    copy = write_json(tmp_path / "copy.json", {**doc([bench(case(), 400.0)]), "datetime": "2026-01-01T00:00:00"})
    for files in ([f, f], [f, copy]):
        assert main(["report", "--by", "backend", *map(str, files), "--out", str(tmp_path / "x.png")]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and "given twice" in err, err
    assert not (tmp_path / "x.png").exists()


def test_results_without_a_case_show_errored_ones_included(tmp_path, capsys):
    fixture = "tests/regression/fixtures/throughput/run_errored.json"
    for by in ("backend", "precision"):
        assert main(["report", "--by", by, fixture, "--out", str(tmp_path / f"{by}.png")]) == 0
        out = capsys.readouterr().out
        assert out.count("error: out of memory") == 2, out
        assert "996.6" in out
    assert main(["report", "--by", "backend", fixture, "--out", str(tmp_path / "b.png")]) == 0
    assert "3 case(s) on no recorded backend, 2 errored" in capsys.readouterr().out


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda x: x["images_per_s"].update(median=1_000_000.0), "is outside the range of its own samples"),
        (lambda x: x["images_per_s"].update(iqr=-200.0), "field 'iqr' is -200.0"),
        (lambda x: x["images_per_s"].update(iqr=500.0), "images_per_s.iqr 500.0 is not q3 - q1"),
        (lambda x: x["case"].update(mode="trian"), "field 'mode' is 'trian'"),
        (lambda x: x["case"].update(batch_size=-128), "field 'batch_size' is -128"),
    ],
)
def test_values_compare_would_refuse_are_refused(tmp_path, capsys, change, words):
    b = bench(case(), 400.0)
    change(b["extra_info"])
    f = write_json(tmp_path / "r.json", doc([b]))
    for by in ("backend", "precision"):
        assert main(["report", "--by", by, str(f), "--out", str(tmp_path / "x.png")]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and words in err, err
    assert not (tmp_path / "x.png").exists()


def test_a_partial_run_names_the_planned_cases_it_did_not_measure(tmp_path, capsys):
    d = doc([bench(case(), 400.0)])
    d["partial"] = True
    d["harness"]["options"] = {"cases": [report.rows([d])[0]["id"], "resnet56-train-bs128-fp32-xla_off-synthetic"]}
    f = write_json(tmp_path / "r.json", d)
    assert main(["report", str(f), "--out", str(tmp_path / "x.png")]) == 0
    assert f"note: {f} did not measure 1 planned case(s): resnet56-train-bs128-fp32-xla_off-synthetic" in (
        capsys.readouterr().out
    )


def test_an_empty_out_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    f = write_json(tmp_path / "r.json", doc([bench(case(), 400.0)]))
    assert main(["report", str(f), "--out", ""]) == 2
    assert (
        capsys.readouterr().err
        == "error: --out '' is invalid; expected a PNG path, or leave --out out for the default\n"
    )
    assert not (tmp_path / "results").exists()


def test_more_precisions_than_colours_plot(tmp_path, monkeypatch):
    got = _figure(monkeypatch)
    report.plot([doc([bench(case(precision=f"p{i}"), 100.0 + i) for i in range(12)])], tmp_path / "x.png")
    assert len(got["fig"].axes[0].patches) == 12
    assert report.PRECISION_HATCHES["mixed_fp16"] == "//"


def test_tensorflow_is_compared_only_within_its_run_and_never_with_itself():
    runs = [
        doc([bench(case(), 400.0), bench(case(backend="jax"), 600.0)]),
        doc([bench(case(), 500.0), bench(case(backend="jax"), 550.0)]),
    ]
    rows = report.rows(runs)
    ratio = {(r["run"], r["backend"]): report.ratio_to_tensorflow(r, rows) for r in rows}
    assert ratio[("run 1", "jax")] == pytest.approx(1.5) and ratio[("run 2", "jax")] == pytest.approx(1.1)
    assert ratio[("run 1", "tensorflow")] is None and ratio[("run 2", "tensorflow")] is None
    # a jax-only run beside two tensorflow runs: which to compare with is a guess, so none
    rows = report.rows([*runs, doc([bench(case(backend="torch"), 300.0)])])
    assert report.ratio_to_tensorflow(rows[-1], rows) is None
    assert (
        report.backend_table(runs)
        .splitlines()[-1]
        .endswith("2 of 2 measured non-tensorflow case(s) have a tensorflow row to compare with")
    )
