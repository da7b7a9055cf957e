"""``python -m bench models`` and the CLI's handling of user mistakes, run as users run them."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import models
from bench.__main__ import main

ROOT = Path(__file__).resolve().parents[2]


def test_models_json_lists_the_zoo(capsys):
    assert main(["models", "resnet20", "preact_*", "--format", "json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"resnet20", "preact_resnet164"}
    for name, row in rows.items():
        spec = models.get_spec(name)
        assert (row["params"], row["trainable_params"]) == (spec.params, spec.trainable)
        assert row["input_shape"] == list(spec.input_shape) and row["source"] == spec.source
    assert rows["resnet20"]["macs"] == 40_813_184  # counted from the layers: 0.04e9 in He et al. 2015's terms


def test_models_table(capsys):
    assert main(["models", "resnet2*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "source", "dataset", "input", "classes", "params", "MACs"]
    assert (
        lines[2].startswith("resnet20")
        and f"{models.get_spec('resnet20').params:,}" in lines[2]
        and "0.041 G" in lines[2]
    )


@pytest.mark.slow
def test_readme_model_table_is_the_commands_output(capsys):
    """The README's zoo table is exactly what ``python -m bench models --format markdown`` prints (all 17 models built)."""
    readme = (ROOT / "README.md").read_text()
    table = re.search(r"^\| name \| source \|.*?(?=\n\n)", readme, flags=re.S | re.M)
    assert table, "README.md has no model table"
    assert main(["models", "--format", "markdown"]) == 0
    assert capsys.readouterr().out.strip() == table.group(0).strip()


def test_user_mistakes_are_one_line_errors():
    """A subprocess, as a user runs it: one line on stderr, exit 2, no traceback (and no TensorFlow log)."""
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-m", "bench", "models", "resnet57"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2
    (line,) = out.stderr.splitlines()  # the one line, no framework's log before it: names are checked first
    assert line.startswith("error: unknown model 'resnet57'; did you mean resnet56")


def test_more_mistakes_in_process(capsys, tmp_path):
    assert main(["models", "nothing*"]) == 2
    assert capsys.readouterr().err.startswith(
        "error: 'nothing*' matches no registered model; valid: fashion_resnet50, "
    )
    assert main(["models", "resnet20,", "vgg1*,resnet2?x"]) == 2  # comma lists too, read as --models reads them
    assert capsys.readouterr().err.startswith("error: 'resnet2?x' matches no registered model; valid: ")
    assert main(["models", "vgg1*,resnet20", "resnet2*", "--format", "json"]) == 0  # the zoo's order, each once
    assert [r["name"] for r in json.loads(capsys.readouterr().out)] == ["resnet20", "vgg16", "vgg19"]
    with pytest.raises(SystemExit) as exc:
        main(["models", "--format", "yaml"])
    assert exc.value.code == 2 and "invalid choice: 'yaml'" in capsys.readouterr().err
    bad = tmp_path / "baselines.json"
    bad.write_text('{"schema": 1, "throughput": 5}')
    assert main(["baselines", "show", "--baselines", str(bad)]) == 2  # a corrupt file is an error, never a pass
    assert "section 'throughput' must map keys to objects" in capsys.readouterr().err
