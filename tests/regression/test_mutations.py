"""The mutation table's edits stay applicable: each anchor is in the source exactly once."""

import pytest

from bench.environment import REPO_ROOT
from bench.regression import mutations


@pytest.mark.parametrize("mutation", mutations.MUTATIONS, ids=lambda m: m.name)
def test_every_mutation_applies_to_this_tree(mutation, tmp_path):
    assert (REPO_ROOT / mutation.path).read_text().count(mutation.old) == 1
    target = tmp_path / mutation.path
    target.parent.mkdir(parents=True)
    target.write_text((REPO_ROOT / mutation.path).read_text())
    mutations.apply(tmp_path, mutation)
    assert mutation.new in target.read_text() and mutation.old not in target.read_text().replace(mutation.new, "")


def test_a_stale_anchor_is_an_error(tmp_path):
    m = mutations.MUTATIONS[0]
    (tmp_path / m.path).parent.mkdir(parents=True)
    (tmp_path / m.path).write_text("nothing to mutate here")
    with pytest.raises(LookupError, match="0 times, not once"):
        mutations.apply(tmp_path, m)


def test_names_are_unique_and_cover_every_kind():
    names = [m.name for m in mutations.MUTATIONS]
    assert len(names) == len(set(names)) >= 8
    assert {m.kind for m in mutations.MUTATIONS} == {"model", "recipe", "training", "data", "evaluation"}


def _fake_pytest(outcomes):
    """A ``_run`` for ``unit_suite``: the whole suite fails the first test in ``outcomes`` not
    deselected; a test run alone gives its entry of ``outcomes`` ("flaky": passes, "real": fails)."""
    calls = []

    def run(cmd, tree, log, timeout):
        calls.append(cmd)
        if "tests" in cmd:  # the suite
            deselected = {cmd[i + 1] for i, a in enumerate(cmd) if a == "--deselect"}
            failing = [t for t in outcomes if t not in deselected]
            return (1, f"FAILED {failing[0]} - AssertionError\n", 10.0) if failing else (0, "1 passed\n", 10.0)
        return (0 if outcomes[cmd[-1]] == "flaky" else 1), "", 1.0

    return run, calls


def test_a_failure_that_repeats_is_the_unit_verdict(tmp_path):
    run, calls = _fake_pytest({"tests/a.py::test_x": "real"})
    row = mutations.unit_suite(tmp_path, tmp_path, run=run)
    assert (
        row["unit"] == "FAIL" and row["unit_detail"].startswith("FAILED tests/a.py::test_x") and row["unit_flaky"] == []
    )
    assert len(calls) == 2 and row["unit_s"] == 11.0


def test_a_flaky_failure_is_set_aside_and_the_suite_run_again(tmp_path):
    run, calls = _fake_pytest({"tests/t.py::test_timing": "flaky", "tests/m.py::test_model": "real"})
    row = mutations.unit_suite(tmp_path, tmp_path, run=run)
    assert (
        row["unit"] == "FAIL"
        and "test_model" in row["unit_detail"]
        and row["unit_flaky"] == ["tests/t.py::test_timing"]
    )
    assert ["--deselect", "tests/t.py::test_timing"] == calls[2][-2:]
    run, _ = _fake_pytest({"tests/t.py::test_timing": "flaky"})
    row = mutations.unit_suite(tmp_path, tmp_path, run=run)
    assert row["unit"] == "pass" and row["unit_flaky"] == ["tests/t.py::test_timing"]
    assert "set aside as flaky: tests/t.py::test_timing" in mutations.markdown(
        [{**row, "name": "n", "what": "w", "kind": "k", "fingerprint": "pass", "gate": "not trained"}], 300
    )


def test_flakes_are_set_aside_a_bounded_number_of_times(tmp_path):
    run, calls = _fake_pytest({f"tests/t.py::test_{i}": "flaky" for i in range(5)})
    row = mutations.unit_suite(tmp_path, tmp_path, run=run)
    assert row["unit"] == "FAIL" and len(row["unit_flaky"]) == mutations.FLAKE_RETRIES


def _row(name="m", fingerprint="pass", gate="not trained", **more):
    return {"name": name, "what": "w", "kind": "k", "fingerprint": fingerprint, "gate": gate, **more}


@pytest.mark.parametrize(
    "row, expected",
    [
        (_row(fingerprint="CHANGED", gate="not trained (fingerprint caught it)"), True),
        (_row(gate="pass + regression"), True),  # verdicts are joined sorted: a failing one after a pass
        (_row(gate="pass + unexpected improvement"), True),
        (_row(gate="error"), True),  # a finding that errored fails the gate
        (_row(gate="pass"), False),
        (_row(gate="error 2"), False),  # the gate broke without a finding: no catch
    ],
)
def test_caught_means_any_finding_failed(row, expected):
    assert mutations.caught(row) is expected


def test_an_error_or_uncaught_row_fails_the_table(tmp_path, capsys):
    rows = [
        _row("ok", gate="pass + regression"),
        _row("missed", gate="pass"),
        _row("broken", fingerprint="error 2"),
        _row("old", fingerprint="stale", gate="stale", detail="anchor gone"),
    ]
    assert mutations._finish(rows, 300, tmp_path) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "FAIL missed: not caught (fingerprint pass, gate pass)",
        "FAIL broken: fingerprint error 2",
        "FAIL old: stale anchor (anchor gone)",
    ]
    assert "| old: w |" in (tmp_path / "mutations.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mutations.json", "mutations.md"]  # no temporary left
    assert mutations._finish(rows[:1], 300, tmp_path) == 0


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--out", "FILE"], "is a file; expected a directory"),
        (["--baselines", "MISSING"], "is not a file"),
        (["--seed", "-1"], "--seed -1 is invalid"),
        (["--only", "nope"], "--only ['nope'] unknown"),
    ],
)
def test_bad_arguments_are_one_line_before_any_work(tmp_path, capsys, monkeypatch, argv, words):
    (tmp_path / "FILE").write_text("kept")
    monkeypatch.setattr(mutations, "judge", lambda *a, **k: pytest.fail("ran a mutation"))
    argv = [a.replace("FILE", str(tmp_path / "FILE")).replace("MISSING", str(tmp_path / "none.json")) for a in argv]
    assert mutations.main(["--out", str(tmp_path / "o"), *argv]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and words in err, err
    assert not (tmp_path / "o").exists()
    assert (tmp_path / "FILE").read_text() == "kept"
