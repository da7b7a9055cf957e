"""``python -m bench baselines``: one measurement counts once however it is given, the usage says what
is required, and the repository's runs recorded again change nothing."""

import json
import shutil
from pathlib import Path

import pytest

from bench.__main__ import main
from bench.regression import baselines
from tests.throughput.shard_documents import shard_docs

RUNS = sorted((baselines.REPO_ROOT / "reports" / "cpu" / "baselines").glob("intel-xeon-x2-run*.json"))


def _shards_and_their_merge(tmp_path) -> list[str]:
    paths = []
    for i, doc in enumerate(shard_docs(2), 1):
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps(doc | {"datetime": f"2026-01-0{i}T00:00:00"}))
    merged = tmp_path / "merged.json"
    assert main(["merge", *map(str, paths), "--out", str(merged)]) == 0
    return [*map(str, paths), str(merged)]


def test_a_shard_and_the_file_merged_from_it_are_one_measurement(tmp_path, capsys):
    """merge adds machine_info.shards, so the run's time, commit and machine differ: its rounds do not."""
    one, two, merged = _shards_and_their_merge(tmp_path)
    base = tmp_path / "b.json"
    capsys.readouterr()
    for paths in ([one, two, merged], [merged, one]):
        assert main(["baselines", "update", *paths, "--baselines", str(base)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is given twice" in err and "one run counts once" in err, err
        assert "the measurement of resnet" in err and not base.exists()
    assert main(["baselines", "update", one, two, "--baselines", str(base)]) == 0  # the shards: one run each
    entries = json.loads(base.read_text())["throughput"]
    assert len(entries) == 6 and not any("between_run" in e for e in entries.values())


def test_without_an_action_the_usage_names_only_what_is_required(capsys):
    with pytest.raises(SystemExit) as e:
        main(["baselines"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "the following arguments are required: action" in err
    assert "results" not in err.splitlines()[-1]


@pytest.mark.parametrize("argv", [["show"], ["update", "--reported"], ["update", "--reported", "--dry-run"]])
def test_an_empty_baselines_path_is_named_as_given(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)  # '' must not be read as the current directory
    assert main(["baselines", *argv, "--baselines", ""]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "baselines file '' names no file; expected the path of a JSON file" in err
    assert "'.'" not in err and list(Path(tmp_path).iterdir()) == []


def test_the_recorded_runs_again_change_nothing_and_keep_what_was_set_by_hand(tmp_path, capsys):
    """The repository's 3-run entries: a hand-set rule stays, and so do its provenance and spread."""
    base = tmp_path / "b.json"
    shutil.copy(baselines.DEFAULT_PATH, base)
    data = json.loads(base.read_text())
    key = next(k for k, e in data["throughput"].items() if (e.get("between_run") or {}).get("n") == 3)
    data["throughput"][key]["rule"] = "throughput:-10%"
    base.write_text(json.dumps(data, indent=2))
    before = base.read_bytes()
    capsys.readouterr()
    for runs in (RUNS[:1], RUNS):
        assert main(["baselines", "update", *map(str, runs), "--baselines", str(base)]) == 0
        assert capsys.readouterr().out == "no change\n" and base.read_bytes() == before
    assert main(["baselines", "update", *map(str, RUNS), "--dry-run"]) == 0  # the repository's own file
    assert capsys.readouterr().out.startswith("no change\n")


@pytest.mark.parametrize("section", ["accuracy", "throughput"])
def test_update_refuses_a_file_whose_other_entries_the_gates_would_refuse(tmp_path, capsys, section):
    """An update writes the whole file back: an entry already bad (hand-edited, a bad merge) in any
    section is one line, exit 2, and the file is left as it was, not rewritten as if it were fine."""
    base = tmp_path / "baselines.json"
    data = json.loads(baselines.DEFAULT_PATH.read_text())
    key = sorted(data[section])[0]
    data[section][key]["mean" if section == "accuracy" else "images_per_s"] = "abc"
    base.write_text(json.dumps(data))
    before = base.read_bytes()
    shards = _shards_and_their_merge(tmp_path)[:2]  # new throughput entries: the update would write
    capsys.readouterr()
    assert main(["baselines", "update", *shards, "--baselines", str(base)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and str(base) in line and key in line and "'abc'" in line, line
    assert base.read_bytes() == before
    assert main(["baselines", "show", "--baselines", str(base)]) == 2  # as show and the gates read it
