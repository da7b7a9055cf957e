"""The command-line entry point, run as users run it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def bench(*args, cwd=ROOT):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_models_json_lists_the_zoo():
    out = bench("models", "resnet20", "preact_*", "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert set(rows) == {"resnet20", "preact_resnet164"}
    assert rows["resnet20"]["params"] == 274_442 and rows["resnet20"]["macs"] == 40_813_184
    assert rows["resnet20"]["input_shape"] == [32, 32, 3] and rows["resnet20"]["source"].startswith("article 003")


def test_models_table():
    out = bench("models", "resnet2*")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["name", "source", "dataset", "input", "classes", "params", "MACs"]
    assert lines[2].startswith("resnet20") and "274,442" in lines[2] and "0.041 G" in lines[2]


def last_line(stderr):
    return [line for line in stderr.splitlines() if line.strip()][-1]


def test_user_mistakes_are_one_line_errors():
    out = bench("models", "resnet57")
    assert out.returncode == 2
    assert last_line(out.stderr).startswith("error: unknown model 'resnet57'; did you mean resnet56")
    assert "Traceback" not in out.stderr


def test_more_mistakes_in_process(capsys):
    from bench.__main__ import main

    assert main(["models", "nothing*"]) == 2
    assert capsys.readouterr().err.strip() == "error: no model matches 'nothing*'; see 'python -m bench models' for the names"
    with pytest.raises(SystemExit) as exc:
        main(["models", "--format", "yaml"])
    assert exc.value.code == 2 and "invalid choice: 'yaml'" in capsys.readouterr().err


def test_corrupt_baselines_is_an_error_not_a_pass(tmp_path):
    bad = tmp_path / "baselines.json"
    bad.write_text('{"schema": 1, "throughput": 5}')
    out = bench("baselines", "show", "--baselines", str(bad))
    assert out.returncode == 2
    assert "section 'throughput' must map keys to objects" in last_line(out.stderr)
    assert "Traceback" not in out.stderr
