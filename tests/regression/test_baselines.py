import json

import pytest

from bench.errors import BaselinesError, UsageError
from bench.regression import baselines


def write(path, data):
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_the_repository_file_is_valid():
    data = baselines.load()
    assert set(data) == {"schema", "throughput", "accuracy", "ab_calibration"}


@pytest.mark.parametrize(
    "content, match",
    [
        ("{not json", "is not valid JSON"),
        ("[]", "must hold a JSON object"),
        ({"schema": 2, "throughput": {}, "accuracy": {}}, "has schema 2"),
        ({"schema": 1, "throughput": {}, "latency": {}}, r"unknown section\(s\) \['latency'\]"),
        ({"schema": 1, "throughput": [], "accuracy": {}}, "section 'throughput' must map keys to objects"),
        ({"schema": 1, "throughput": {"k": 3}, "accuracy": {}}, "section 'throughput' must map keys to objects"),
        ({"schema": 1, "ab_calibration": {"cpu:x": {"threshold": "2%"}}}, r"\['cpu:x'\]\.threshold is '2%'"),
        ({"schema": 1, "ab_calibration": {"cpu:x": {"threshold": 1.5}}}, "expected a fraction from 0 to 1"),
        (
            {"schema": 1, "ab_calibration": {"cpu:x": {"threshold": float("nan")}}},
            "field 'threshold' is nan; expected a finite number",
        ),
        ({"schema": 1, "ab_calibration": {"cpu:x": {"threshold": 0.02}}}, "throughput_args is None"),
        ({"schema": 1, "ab_calibration": {"cpu:x": {"threshold": 0.02, "throughput_args": [5]}}}, "list of strings"),
        (
            {"schema": 1, "ab_calibration": {"cpu:x": {"threshold": 0.02, "throughput_args": [], "interleave": 2}}},
            "interleave is 2; expected a string",
        ),
        (
            {"schema": 1, "ab_calibration": {"cpu:x": {"threshold": 0.02, "throughput_args": [], "cases": ["a"]}}},
            r"cases is \['a'\]; expected the A/A's cases by key",
        ),
        (
            {"schema": 1, "ab_calibration": {"cpu:x": {"threshold": 0.02, "throughput_args": ["--rounds", "ten"]}}},
            r"throughput_args is \['--rounds', 'ten'\]; expected --rounds to be a positive integer",
        ),
        (
            {"schema": 1, "ab_calibration": {"cpu:x": {"threshold": 0.02, "throughput_args": ["--rounds=0"]}}},
            "expected --rounds to be a positive integer",
        ),
        (
            {"schema": 1, "ab_calibration": {"cpu:x": {"threshold": 0.02, "throughput_args": ["--rounds"]}}},
            "expected --rounds to be a positive integer",
        ),
    ],
)
def test_corrupt_or_invalid_files_are_errors(tmp_path, content, match):
    path = write(tmp_path / "baselines.json", content)
    with pytest.raises(BaselinesError, match=match):
        baselines.load(path)


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(BaselinesError, match="does not exist"):
        baselines.section(tmp_path / "nope.json", "accuracy")


def test_update_shows_a_diff_and_writes_only_when_asked(tmp_path):
    path = write(tmp_path / "baselines.json", {"schema": 1, "throughput": {"a": {"v": 1}}, "accuracy": {}})
    diff = baselines.update(path, "throughput", {"a": {"v": 2}, "b": {"v": 3}}, dry_run=True)
    assert diff == ['- throughput/a: {"v": 1}', '+ throughput/a: {"v": 2}', '+ throughput/b: {"v": 3}']
    assert baselines.section(path, "throughput") == {"a": {"v": 1}}
    baselines.update(path, "throughput", {"a": {"v": 2}, "b": {"v": 3}})
    assert baselines.section(path, "throughput") == {"a": {"v": 2}, "b": {"v": 3}}
    assert baselines.update(path, "throughput", {"a": {"v": 2}}) == []
    with pytest.raises(UsageError, match="section 'latency' is invalid"):
        baselines.update(path, "latency", {})


def test_an_update_of_none_removes_an_entry_and_keeps_the_others(tmp_path):
    path = write(tmp_path / "baselines.json", {"schema": 1, "accuracy": {"a": {"x": 1}, "b": {"x": 2}}})
    diff = baselines.update_sections(path, lambda data: {"accuracy": {"a": None, "c": {"x": 3}}})
    assert diff == ['- accuracy/a: {"x": 1}', '+ accuracy/c: {"x": 3}']
    assert baselines.load(path)["accuracy"] == {"b": {"x": 2}, "c": {"x": 3}}
    assert baselines.update_sections(path, lambda data: {"accuracy": {"gone": None}}) == []  # nothing to remove


def test_update_refuses_to_overwrite_a_corrupt_file(tmp_path):
    path = write(tmp_path / "baselines.json", "{corrupt")
    with pytest.raises(BaselinesError):
        baselines.update(path, "accuracy", {"k": {"mean": 1.0}})
    assert path.read_text() == "{corrupt"


def test_an_update_through_a_symlink_writes_its_target_and_locks_the_targets_folder(tmp_path, monkeypatch):
    """The link stays a link (its target gets the entry, never stale), and the lock is the target's
    folder's, where the write happens, so an update through the link and one of the target exclude
    one another."""
    import os

    (tmp_path / "shared").mkdir()
    target = write(tmp_path / "shared" / "baselines.json", {"schema": 1, "accuracy": {}})
    link = tmp_path / "here" / "baselines.json"
    link.parent.mkdir()
    link.symlink_to(target)
    locked_dirs = []
    real_open = os.open

    def spy(path, flags, *args):
        if flags & os.O_DIRECTORY:
            locked_dirs.append(os.fspath(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(baselines.os, "open", spy)
    baselines.update(link, "accuracy", {"k": {"x": 1}})
    assert link.is_symlink() and baselines.section(target, "accuracy") == {"k": {"x": 1}}
    assert locked_dirs == [os.path.realpath(target.parent)]
    assert sorted(p.name for p in link.parent.iterdir()) == ["baselines.json"]


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("cv", float("inf"), "field 'cv' is inf"),
        ("utilization", float("nan"), "field 'utilization' is nan"),
        ("loadavg", [1.0, float("-inf")], "field 'loadavg[1]' is -inf"),
        ("between_run", {"medians": [1.0, 2.0], "shapiro_p": float("nan")}, ".between_run: field 'shapiro_p' is nan"),
    ],
)
def test_a_nan_or_inf_anywhere_in_an_entry_is_refused_on_load(tmp_path, capsys, field, value, words):
    """Not JSON: ``show`` would print it, ``update`` could not write the file back, a gate would
    compare against it. Any field, checked by its section or not."""
    from bench.__main__ import main

    data = json.loads(baselines.DEFAULT_PATH.read_text())
    key = next(iter(data["throughput"]))
    data["throughput"][key][field] = value
    path = tmp_path / "baselines.json"
    path.write_text(json.dumps(data))
    before = path.read_bytes()
    run = str(baselines.REPO_ROOT / "reports" / "cpu" / "baselines" / "intel-xeon-x2-run1.json")
    for argv in (["show"], ["update", run]):
        assert main(["baselines", *argv, "--baselines", str(path)]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and f"throughput/{key}" in err and words in err, err
        assert "expected a finite number" in err and path.read_bytes() == before
