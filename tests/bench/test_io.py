import json
import math

import numpy as np
import pytest

from bench.errors import UsageError
from bench.io import atomic_path, read_json, write_json


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
