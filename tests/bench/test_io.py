import json
import math

import numpy as np
import pytest

from bench.errors import UsageError
from bench.io import finite_or_none, read_json, write_json


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


@pytest.mark.parametrize("value, expected", [(1, 1.0), ("2.5", 2.5), (math.nan, None), (math.inf, None), (None, None), ("x", None)])
def test_finite_or_none(value, expected):
    assert finite_or_none(value) == expected
