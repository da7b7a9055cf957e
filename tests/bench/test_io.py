import json
import math
from pathlib import Path

import numpy as np
import pytest

from bench import io
from bench.errors import UsageError
from bench.io import atomic_path, read_json, writable_file, write_json


def test_write_is_atomic_and_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "sub" / "result.json"
    write_json(path, {"a": np.float32(1.5), "b": np.arange(3), "c": (1, 2)})
    assert json.loads(path.read_text()) == {"a": 1.5, "b": [0, 1, 2], "c": [1, 2]}
    with pytest.raises(ValueError):
        write_json(path, {"a": math.nan})  # strict JSON: refused, not written half-way
    assert json.loads(path.read_text())["a"] == 1.5
    assert [p.name for p in path.parent.iterdir()] == ["result.json"]  # no temp file left behind


def test_read_errors_are_one_line_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        read_json(tmp_path / "missing.json", what="result file")
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1,')
    with pytest.raises(UsageError, match=r"result file .*bad.json' is not valid JSON \(line 1"):
        read_json(bad, what="result file")


@pytest.mark.parametrize("digits", [310, 5001])  # past float's range; past Python's 4,300-digit int() limit
def test_an_integer_beyond_floats_range_is_one_line_not_an_overflow(tmp_path, digits):
    """A hand-edited top-1 or images/s of 10**400 read as an int, then compared with a float
    (``math.isfinite``, ``float()``), was an OverflowError traceback in every command; 5,001 digits a
    ValueError from ``json.loads`` itself."""
    big = tmp_path / "big.json"
    big.write_text('{"top1": 1' + "0" * (digits - 1) + "}")
    with pytest.raises(
        UsageError, match=rf"result file .*big.json' holds the integer 10+\.\.\. \({digits} digits\)"
    ) as e:
        read_json(big, what="result file")
    assert "\n" not in str(e.value)
    edge = tmp_path / "edge.json"
    edge.write_text(json.dumps({"a": 10**308, "b": -(10**308), "c": 7}))  # within float's range: read as ints
    assert read_json(edge) == {"a": 10**308, "b": -(10**308), "c": 7}


def test_a_fifo_or_a_directory_is_refused_not_waited_on(tmp_path):
    """A FIFO named like a result (in a folder the gate reads) would block the read for ever."""
    import os

    os.mkfifo(tmp_path / "r.json")
    (tmp_path / "d.json").mkdir()
    for name in ("r.json", "d.json"):
        with pytest.raises(UsageError, match=rf"result file .*{name}' is not a regular file"):
            read_json(tmp_path / name, what="result file")


def test_atomic_path_keeps_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "plot.png"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(path, suffix=".png") as tmp:
            assert tmp.suffix == ".png" and tmp.parent == tmp_path
            tmp.write_bytes(b"half")
            raise RuntimeError("writer died")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["plot.png"]
    with atomic_path(path, suffix=".png") as tmp:
        tmp.write_bytes(b"new")
    assert path.read_bytes() == b"new"


def test_a_symlink_is_written_through_and_kept(tmp_path):
    target = tmp_path / "real" / "baselines.json"
    target.parent.mkdir()
    target.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_json(link, {"a": 1})
    assert link.is_symlink() and json.loads(target.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "real"]  # no temp file beside the link


@pytest.mark.parametrize("kind", ["fifo", "dir"])
def test_a_target_that_is_not_a_regular_file_is_refused_in_one_line(tmp_path, kind):
    import os

    path = tmp_path / "out.json"
    os.mkfifo(path) if kind == "fifo" else path.mkdir()
    with pytest.raises(UsageError, match=r"out.json' is (not a regular file|a directory)") as e:
        write_json(path, {"a": 1})
    assert "\n" not in str(e.value)
    assert (path.is_fifo() if kind == "fifo" else path.is_dir()) and [p.name for p in tmp_path.iterdir()] == [
        "out.json"
    ]
    with pytest.raises(UsageError, match="--json .*out.json' is"):
        writable_file("--json", path)
    link = tmp_path / "link.json"
    link.symlink_to(path)
    with pytest.raises(UsageError, match="is (not a regular file|a directory)"):
        write_json(link, {"a": 1})
    assert link.is_symlink()


def test_runs_in_the_same_second_claim_directories_of_their_own(tmp_path):
    """Two runs whose ``{time}`` is the same second get ``<time>`` and ``<time>-2``, each made by
    the run that owns it; a template without ``{time}`` names one directory, which a rerun reuses."""
    template = str(tmp_path / "ab" / "{time}")
    first = io.claim_directory(template, "20261207T020000")
    second = io.claim_directory(template, "20261207T020000")
    third = io.claim_directory(template, "20261207T020000")
    assert [p.name for p in (first, second, third)] == ["20261207T020000", "20261207T020000-2", "20261207T020000-3"]
    assert all(p.is_dir() for p in (first, second, third))
    fixed = str(tmp_path / "mine")
    assert io.claim_directory(fixed, "x") == io.claim_directory(fixed, "x") == Path(fixed)


def test_a_directory_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match=r"--out '.*file/20261207T020000' cannot be made"):
        io.claim_directory(str(tmp_path / "file" / "{time}"), "20261207T020000")


def test_two_runs_started_in_one_second_claim_two_result_files(tmp_path):
    """``FileClaim``: the second run of a ``{time}`` template in the same second takes ``<time>-2``
    and never replaces the first's file; each run's later writes replace its own file only."""
    template = str(tmp_path / "results" / "{time}-{device}.json")
    first = io.FileClaim(template, stamp="20261207T020000", device="cpu")
    second = io.FileClaim(template, stamp="20261207T020000", device="cpu")
    assert first.write_json({"run": 1}).name == "20261207T020000-cpu.json"
    assert second.write_json({"run": 2}).name == "20261207T020000-2-cpu.json"
    assert first.write_json({"run": 1, "done": True}) == first.path  # its own file, replaced
    assert second.write_json({"run": 2, "done": True}) == second.path
    assert json.loads(first.path.read_text()) == {"run": 1, "done": True}
    assert json.loads(second.path.read_text()) == {"run": 2, "done": True}
    assert sorted(p.name for p in first.path.parent.iterdir()) == [
        "20261207T020000-2-cpu.json",
        "20261207T020000-cpu.json",
    ]  # no temporary file left


def test_a_figure_is_claimed_as_a_result_file_is(tmp_path):
    """``save_figure`` to a ``FileClaim`` (``--plot`` with ``{time}``): two runs of one second write two
    PNGs, each whole (matplotlib reads the format from the temporary file's suffix), none left over."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    template = str(tmp_path / "{time}-{device}.png")
    paths = [
        io.save_figure(plt.figure(), io.FileClaim(template, stamp="20261207T020000", device="cpu")) for _ in range(2)
    ]
    assert [p.name for p in paths] == ["20261207T020000-cpu.png", "20261207T020000-2-cpu.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)
    assert plt.get_fignums() == []  # closed


def test_a_result_path_without_time_is_replaced_as_the_user_asked(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text("{}")
    claim = io.FileClaim(str(path), stamp="20261207T020000")
    assert claim.write_json({"run": 1}) == path and json.loads(path.read_text()) == {"run": 1}
