"""Every command x every flag x {missing, wrong type, out of range, unwritable, corrupt}, as a
careless or hostile user would type them: one line on stderr that names the bad value, exit 2, no
traceback, and no file written or changed. The CLI runs in this process (``bench.__main__.main``);
every case fails before a model is built or data is read.

The one exception is by design: a bad result file handed to ``gate`` is that file's ERROR finding
(exit 1), so that one bad file in a results directory does not hide the others' verdicts.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import shutil
from pathlib import Path

import pytest

from bench.__main__ import COMMANDS, main

REPO = Path(__file__).resolve().parents[2]
TRAIN_RESULT = REPO / "tests/regression/fixtures/accuracy/results/result_pass.json"
THROUGHPUT_RESULT = REPO / "tests/regression/fixtures/throughput/run_noise.json"
RECIPE = "smoke_resnet20_cifar10_jpeg"
# train runs that slipped through would still be small and quick
TRAIN = ["train", RECIPE, "--mock", "4", "--budget", "steps=1", "--eager", "--out", "{tmp}/out"]
BIG = "99999999999"


def _train_doc(**changes) -> str:
    return json.dumps({**json.loads(TRAIN_RESULT.read_text()), **changes})


def _throughput_doc(change) -> str:
    doc = json.loads(THROUGHPUT_RESULT.read_text())
    change(doc)
    return json.dumps(doc)


def _median(doc, value):
    doc["benchmarks"][0]["extra_info"]["images_per_s"]["median"] = value


# files every case may name, made fresh in its own directory: name -> content (None: a directory)
FILES = {
    "dir": None,
    "file": "",
    "baselines.json": (REPO / "tests/regression/fixtures/accuracy/baselines_ok.json").read_text(),
    "corrupt.json": '{"kind": "bench.train", ',
    "latin1.json": b'{"recipe": "caf\xe9"}',
    "list.json": "[1, 2]",
    "train.json": TRAIN_RESULT.read_text(),
    "top1_huge.json": _train_doc(top1=1e9),
    "top1_text.json": _train_doc(top1="75.1"),
    "seed_text.json": _train_doc(seed="three"),
    "status_odd.json": _train_doc(status="maybe"),
    "modified_text.json": _train_doc(modified="schedule.base=1"),
    "nan_train.json": _train_doc(status="failed", error="loss became nan", top1=None),
    "throughput.json": THROUGHPUT_RESULT.read_text(),
    "median_text.json": _throughput_doc(lambda d: _median(d, "fast")),
    "benchmarks_text.json": _throughput_doc(lambda d: d.update(benchmarks=[3])),
    "samples_text.json": _throughput_doc(
        lambda d: d["benchmarks"][0]["extra_info"]["images_per_s"].update(samples=["a"])
    ),
    "baselines_latin1.json": b'{"schema": 1, "accuracy": {"caf\xe9": 1}}',
    "baselines_loose.json": json.dumps(
        {
            "schema": 1,
            "throughput": {},
            "accuracy": {
                k: {**v, "tolerance": "top1:-1000pt"}
                for k, v in json.loads((REPO / "tests/regression/fixtures/accuracy/baselines_ok.json").read_text())[
                    "accuracy"
                ].items()
            },
        }
    ),
    "archive.tar.gz": b"not a tarball",
    # impossible values and shapes (the result reader's checks) and a bare reported figure
    "fp_model_text.json": _train_doc(fingerprint={"recipe": "x", "model": 1, "data": []}),
    "loss_negative.json": _train_doc(loss=-0.5),
    "ok_with_error.json": _train_doc(error="boom"),
    "steps_negative.json": _train_doc(steps_run=-1170),
    "reported_bare.json": json.dumps({"kind": "bench.reported", "recipe": RECIPE}),
    "baselines_samples_list.json": json.dumps(
        {
            "schema": 1,
            "accuracy": {
                k: {**v, "samples": [1, 2]}
                for k, v in json.loads((REPO / "tests/regression/fixtures/accuracy/baselines_ok.json").read_text())[
                    "accuracy"
                ].items()
            },
        }
    ),
    "calibration_text.json": json.dumps(
        {"schema": 1, "ab_calibration": {"cpu:x": {"threshold": "2%", "throughput_args": []}}}
    ),
}


def update(*args: str) -> list[str]:
    """``baselines update ARGS --baselines <the case's copy>`` (the flag last: argparse takes no
    positional after an option once ``results`` has been given none)."""
    return ["baselines", "update", *args, "--baselines", "{tmp}/baselines.json"]


# (command, flag, kind, argv, what the line must name); argv's {tmp} is the case's directory
CASES: list[tuple[str, str, str, list[str], str]] = [
    # -- models
    ("models", "patterns", "missing", ["models", "resnet_nope"], "resnet_nope"),
    ("models", "patterns", "out of range", ["models", "zz*"], "zz*"),
    ("models", "--format", "wrong type", ["models", "--format", "yaml"], "yaml"),
    ("models", "--format", "missing", ["models", "--format"], "--format"),
    # -- train
    ("train", "recipe", "missing", ["train"], "recipe"),
    ("train", "recipe", "wrong type", [*TRAIN[:1], "resnet56_cifar", *TRAIN[2:]], "resnet56_cifar"),
    ("train", "--budget", "wrong type", [*TRAIN, "--budget", "hours=1"], "hours=1"),
    ("train", "--budget", "out of range", [*TRAIN, "--budget", "steps=0"], "steps=0"),
    ("train", "--budget", "out of range", [*TRAIN, "--budget", "steps=10000000000000"], "steps=10000000000000"),
    ("train", "--budget", "missing", [*TRAIN, "--budget"], "--budget"),
    ("train", "--seed", "out of range", [*TRAIN, "--seed", "-1"], "-1"),
    ("train", "--seed", "out of range", [*TRAIN, "--seed", BIG], BIG),
    ("train", "--seed", "wrong type", [*TRAIN, "--seed", "x"], "'x'"),
    ("train", "--seed", "missing", [*TRAIN, "--seed"], "--seed"),
    ("train", "--backend", "wrong type", [*TRAIN, "--backend", "mxnet"], "mxnet"),
    ("train", "--backend", "missing", [*TRAIN, "--backend", ""], "--backend"),
    ("train", "--device", "wrong type", [*TRAIN, "--device", "quantum"], "quantum"),
    ("train", "--tpu", "out of range", [*TRAIN, "--tpu", "v4"], "v4"),
    ("train", "--cpu-replicas", "out of range", [*TRAIN, "--cpu-replicas", "0"], "0"),
    ("train", "--cpu-replicas", "out of range", [*TRAIN, "--cpu-replicas", "1000000"], "1000000"),
    ("train", "--cpu-replicas", "out of range", [*TRAIN, "--cpu-replicas", "2", "--set", "batch_size=3"], "2"),
    ("train", "--cpu-replicas", "wrong type", [*TRAIN, "--cpu-replicas", "two"], "two"),
    ("train", "--precision", "wrong type", [*TRAIN, "--precision", "fp64"], "fp64"),
    ("train", "--deterministic", "wrong type", [*TRAIN, "--deterministic", "maybe"], "maybe"),
    ("train", "--out", "unwritable", [*TRAIN, "--out", "/proc/cnn-bench"], "/proc/cnn-bench"),
    ("train", "--out", "unwritable", [*TRAIN, "--out", "{tmp}/file"], "file"),
    ("train", "--out", "unwritable", [*TRAIN, "--out", "{tmp}/file/below"], "below"),
    ("train", "--data-dir", "wrong type", [*TRAIN, "--data-dir", "{tmp}/file"], "file"),
    ("train", "--manual-dir", "wrong type", [*TRAIN, "--manual-dir", "{tmp}/file"], "file"),
    ("train", "--archive", "wrong type", [*TRAIN, "--archive", "{tmp}/dir"], "dir"),
    ("train", "--archive", "missing", [*TRAIN, "--archive", "{tmp}/nope.tar.gz"], "nope.tar.gz"),
    ("train", "--archive", "corrupt", [*TRAIN[:2], "--archive", "{tmp}/archive.tar.gz"], "archive.tar.gz"),
    ("train", "--cache-dir", "wrong type", [*TRAIN, "--cache-dir", "{tmp}/file"], "file"),
    ("train", "--mock", "out of range", [*TRAIN, "--mock", "0"], "0"),
    ("train", "--mock", "wrong type", [*TRAIN, "--mock", "1.5"], "1.5"),
    ("train", "--set", "wrong type", [*TRAIN, "--set", "batch_size=true"], "true"),
    ("train", "--set", "wrong type", [*TRAIN, "--set", 'deterministic="yes"'], "yes"),
    ("train", "--set", "wrong type", [*TRAIN, "--set", "schedule.base=fast"], "fast"),
    ("train", "--set", "out of range", [*TRAIN, "--set", "nope=1"], "nope"),
    ("train", "--set", "out of range", [*TRAIN, "--set", "batch_size=0"], "batch_size"),
    ("train", "--set", "missing", [*TRAIN, "--set", "batch_size"], "batch_size"),
    ("train", "--steps-per-execution", "out of range", [*TRAIN, "--steps-per-execution", "0"], "0"),
    ("train", "--steps-per-execution", "wrong type", [*TRAIN, "--steps-per-execution", "x"], "'x'"),
    ("train", "--eager", "wrong type", [*TRAIN, "--eager=yes"], "yes"),
    ("train", "--fresh", "wrong type", [*TRAIN, "--fresh=1"], "1"),
    ("train", "--plot", "wrong type", [*TRAIN, "--plot=no"], "no"),
    # -- throughput (the plan is resolved, and every output path checked, before pytest starts)
    ("throughput", "--backend", "wrong type", ["throughput", "--backend", "mxnet"], "mxnet"),
    ("throughput", "--device", "wrong type", ["throughput", "--device", "quantum"], "quantum"),
    ("throughput", "--tpu", "out of range", ["throughput", "--tpu", "v4"], "v4"),
    ("throughput", "--models", "wrong type", ["throughput", "--models", "resnet_nope"], "resnet_nope"),
    ("throughput", "--models", "missing", ["throughput", "--models", ","], "--models"),
    ("throughput", "--mode", "wrong type", ["throughput", "--mode", "both"], "both"),
    ("throughput", "--batch-size", "out of range", ["throughput", "--batch-size", "0"], "0"),
    ("throughput", "--batch-size", "wrong type", ["throughput", "--batch-size", "big"], "big"),
    ("throughput", "--batch-size", "out of range", ["throughput", "--batch-size", "3", "--cpu-replicas", "2"], "3"),
    ("throughput", "--precision", "wrong type", ["throughput", "--precision", "fp64"], "fp64"),
    ("throughput", "--xla", "wrong type", ["throughput", "--xla", "maybe"], "maybe"),
    ("throughput", "--compile", "out of range", ["throughput", "--compile", "on"], "--compile"),
    ("throughput", "--data", "wrong type", ["throughput", "--data", "fake"], "fake"),
    ("throughput", "--rounds", "out of range", ["throughput", "--rounds", "1"], "1"),
    ("throughput", "--rounds", "wrong type", ["throughput", "--rounds", "x"], "'x'"),
    ("throughput", "--warmup-rounds", "out of range", ["throughput", "--warmup-rounds", "-1"], "-1"),
    ("throughput", "--max-rounds", "out of range", ["throughput", "--max-rounds", "3"], "3"),
    ("throughput", "--max-cv", "out of range", ["throughput", "--max-cv", "0"], "0"),
    ("throughput", "--max-cv", "out of range", ["throughput", "--max-cv", "nan"], "nan"),
    ("throughput", "--round-seconds", "out of range", ["throughput", "--round-seconds", "inf"], "inf"),
    ("throughput", "--round-seconds", "out of range", ["throughput", "--round-seconds", "-1"], "-1"),
    ("throughput", "--round-seconds", "wrong type", ["throughput", "--round-seconds", "x"], "'x'"),
    ("throughput", "--steps", "out of range", ["throughput", "--steps", "0"], "0"),
    ("throughput", "--cpu-replicas", "out of range", ["throughput", "--cpu-replicas", "0"], "0"),
    ("throughput", "--cpu-replicas", "out of range", ["throughput", "--cpu-replicas", "1000000"], "1000000"),
    ("throughput", "--seed", "out of range", ["throughput", "--seed", "-1"], "-1"),
    ("throughput", "--seed", "out of range", ["throughput", "--seed", BIG], BIG),
    (
        "throughput",
        "--data-archive",
        "corrupt",
        ["throughput", "--data", "real", "--data-archive", "{tmp}/archive.tar.gz"],
        "archive.tar.gz",
    ),
    (
        "throughput",
        "--data-archive",
        "missing",
        ["throughput", "--data", "real", "--data-archive", "{tmp}/nope.tgz"],
        "nope.tgz",
    ),
    (
        "throughput",
        "--bench-out",
        "unwritable",
        ["throughput", "--bench-out", "/proc/cnn-bench.json"],
        "/proc/cnn-bench.json",
    ),
    ("throughput", "--bench-out", "unwritable", ["throughput", "--bench-out", "{tmp}/dir"], "dir"),
    ("throughput", "--bench-out", "unwritable", ["throughput", "--bench-out", "{tmp}/file/r.json"], "r.json"),
    ("throughput", "--bench-out", "wrong type", ["throughput", "--bench-out", "{tmp}/{when}.json"], "{when}"),
    ("throughput", "--plot", "unwritable", ["throughput", "--plot", "{tmp}/file/p.png"], "p.png"),
    ("throughput", "--plot", "wrong type", ["throughput", "--plot", "{tmp}/p.json"], "p.json"),
    (
        "throughput",
        "--plot",
        "unwritable",
        ["throughput", "--bench-out", "{tmp}/same.png", "--plot", "{tmp}/same.png"],
        "is the file --bench-out writes",
    ),
    (
        "throughput",
        "--data-archive",
        "out of range",
        ["throughput", "--data-archive", "{tmp}/archive.tar.gz"],
        "--data real only",
    ),
    ("throughput", "--batch-size", "wrong type", ["throughput", "--batch-size", "\u00b2"], "\u00b2"),
    ("throughput", "--pytest-table", "wrong type", ["throughput", "--pytest-table=1"], "1"),
    ("throughput", "pytest_args", "wrong type", ["throughput", "--no-such-flag"], "--no-such-flag"),
    ("throughput", "pytest_args", "wrong type", ["throughput", "resnet20"], "--models resnet20"),
    ("throughput", "pytest_args", "wrong type", ["throughput", "--", "--bogus-flag"], "--bogus-flag"),
    ("throughput", "pytest_args", "missing", ["throughput", "--", "--benchmark-json"], "--benchmark-json"),
    ("throughput", "pytest_args", "out of range", ["throughput", "--", "--benchmark-disable"], "--benchmark-disable"),
    ("throughput", "pytest_args", "out of range", ["throughput", "--", "--benchmark-skip"], "--benchmark-skip"),
    ("throughput", "pytest_args", "out of range", ["throughput", "--", "--co"], "--collect-only"),
    ("throughput", "pytest_args", "out of range", ["throughput", "--isolate", "none", "--", "--co"], "--collect-only"),
    (
        "throughput",
        "--bench-out",
        "unwritable",
        [
            "throughput",
            "--data",
            "real",
            "--data-archive",
            "{tmp}/archive.tar.gz",
            "--bench-out",
            "{tmp}/archive.tar.gz",
        ],
        "is the input",
    ),
    # -- throughput --isolate: what runs in a child process of its own
    ("throughput", "--isolate", "wrong type", ["throughput", "--isolate", "process"], "process"),
    ("throughput", "--isolate", "wrong type", ["throughput", "--isolate", "model,case"], "model,case"),
    ("throughput", "--isolate", "missing", ["throughput", "--isolate", ""], "--isolate"),
    ("throughput", "--isolate", "missing", ["throughput", "--isolate"], "--isolate"),
    # -- compare
    ("compare", "results", "missing", ["compare"], "results"),
    ("compare", "results", "missing", ["compare", "{tmp}/nope.json"], "nope.json"),
    ("compare", "results", "corrupt", ["compare", "{tmp}/corrupt.json"], "corrupt.json"),
    ("compare", "results", "corrupt", ["compare", "{tmp}/latin1.json"], "UTF-8"),
    ("compare", "results", "wrong type", ["compare", "{tmp}/list.json"], "list.json"),
    ("compare", "results", "wrong type", ["compare", "{tmp}/train.json"], "train.json"),
    ("compare", "results", "wrong type", ["compare", "{tmp}/median_text.json"], "median"),
    ("compare", "results", "wrong type", ["compare", "{tmp}/benchmarks_text.json"], "benchmarks[0]"),
    ("compare", "results", "wrong type", ["compare", "{tmp}/samples_text.json"], "samples"),
    ("compare", "results", "wrong type", ["compare", "{tmp}/dir"], "dir"),
    (
        "compare",
        "--baselines",
        "missing",
        ["compare", "{tmp}/throughput.json", "--baselines", "{tmp}/nope.json"],
        "nope.json",
    ),
    (
        "compare",
        "--baselines",
        "corrupt",
        ["compare", "{tmp}/throughput.json", "--baselines", "{tmp}/corrupt.json"],
        "corrupt.json",
    ),
    (
        "compare",
        "--baselines",
        "corrupt",
        ["compare", "{tmp}/throughput.json", "--baselines", "{tmp}/baselines_latin1.json"],
        "UTF-8",
    ),
    (
        "compare",
        "--baselines",
        "wrong type",
        ["compare", "{tmp}/throughput.json", "--baselines", "{tmp}/calibration_text.json"],
        "threshold is '2%'",
    ),
    ("compare", "--tolerance", "wrong type", ["compare", "{tmp}/throughput.json", "--tolerance", "five"], "five"),
    (
        "compare",
        "--tolerance",
        "out of range",
        ["compare", "{tmp}/throughput.json", "--tolerance", "throughput:-80%"],
        "80",
    ),
    ("compare", "--alpha", "out of range", ["compare", "{tmp}/throughput.json", "--alpha", "2"], "2"),
    ("compare", "--alpha", "wrong type", ["compare", "{tmp}/throughput.json", "--alpha", "x"], "'x'"),
    ("compare", "--device-class", "missing", ["compare", "{tmp}/throughput.json", "--device-class"], "--device-class"),
    # -- gate
    ("gate", "results", "missing", ["gate"], "results"),
    ("gate", "results", "missing", ["gate", "{tmp}/nope.json"], "nope.json"),
    ("gate", "--baselines", "missing", ["gate", "{tmp}/train.json", "--baselines", "{tmp}/nope.json"], "nope.json"),
    (
        "gate",
        "--baselines",
        "corrupt",
        ["gate", "{tmp}/train.json", "--baselines", "{tmp}/corrupt.json"],
        "corrupt.json",
    ),
    (
        "gate",
        "--baselines",
        "corrupt",
        ["gate", "{tmp}/train.json", "--baselines", "{tmp}/baselines_latin1.json"],
        "UTF-8",
    ),
    (
        "gate",
        "--baselines",
        "out of range",
        ["gate", "{tmp}/train.json", "--baselines", "{tmp}/baselines_loose.json"],
        "1000pt",
    ),
    (
        "gate",
        "--json",
        "unwritable",
        ["gate", "{tmp}/train.json", "--json", "/proc/cnn-bench.json"],
        "/proc/cnn-bench.json",
    ),
    ("gate", "--json", "unwritable", ["gate", "{tmp}/train.json", "--json", "{tmp}/dir"], "dir"),
    ("gate", "--json", "unwritable", ["gate", "{tmp}/train.json", "--json", "{tmp}/file/g.json"], "g.json"),
    ("gate", "--json", "missing", ["gate", "{tmp}/train.json", "--json"], "--json"),
    # -- report
    ("report", "results", "missing", ["report"], "results"),
    ("report", "results", "missing", ["report", "{tmp}/nope.json", "--out", "{tmp}/r.png"], "nope.json"),
    ("report", "results", "corrupt", ["report", "{tmp}/corrupt.json", "--out", "{tmp}/r.png"], "corrupt.json"),
    ("report", "results", "corrupt", ["report", "{tmp}/latin1.json", "--out", "{tmp}/r.png"], "UTF-8"),
    ("report", "results", "wrong type", ["report", "{tmp}/median_text.json", "--out", "{tmp}/r.png"], "median"),
    ("report", "results", "wrong type", ["report", "{tmp}/train.json", "--out", "{tmp}/r.png"], "train.json"),
    ("report", "--by", "wrong type", ["report", "{tmp}/throughput.json", "--by", "color"], "color"),
    (
        "report",
        "--out",
        "unwritable",
        ["report", "{tmp}/throughput.json", "--out", "/proc/cnn-bench.png"],
        "/proc/cnn-bench.png",
    ),
    ("report", "--out", "unwritable", ["report", "{tmp}/throughput.json", "--out", "{tmp}/dir"], "dir"),
    ("report", "--out", "unwritable", ["report", "{tmp}/throughput.json", "--out", "{tmp}/file/r.png"], "r.png"),
    (
        "report",
        "--out",
        "unwritable",
        ["report", "{tmp}/throughput.json", "--out", "{tmp}/throughput.json"],
        "is the input",
    ),
    ("report", "--out", "wrong type", ["report", "{tmp}/throughput.json", "--out", "{tmp}/r.txt"], "not a .png"),
    # -- baselines
    ("baselines", "action", "wrong type", ["baselines", "delete"], "delete"),
    ("baselines", "action", "missing", ["baselines"], "action"),
    ("baselines", "results", "missing", update(), "result file"),
    ("baselines", "results", "missing", update("{tmp}/nope.json"), "nope.json"),
    ("baselines", "results", "corrupt", update("{tmp}/corrupt.json"), "corrupt.json"),
    ("baselines", "results", "corrupt", update("{tmp}/latin1.json"), "UTF-8"),
    ("baselines", "results", "wrong type", update("{tmp}/list.json"), "list.json"),
    ("baselines", "results", "wrong type", update("{tmp}/top1_text.json"), "top1"),
    ("baselines", "results", "wrong type", update("{tmp}/seed_text.json"), "seed"),
    ("baselines", "results", "wrong type", update("{tmp}/status_odd.json"), "maybe"),
    ("baselines", "results", "wrong type", update("{tmp}/modified_text.json"), "modified"),
    ("baselines", "results", "wrong type", update("{tmp}/median_text.json"), "median"),
    ("baselines", "results", "out of range", update("{tmp}/top1_huge.json"), "1000000000"),
    ("baselines", "results", "corrupt", update("{tmp}/throughput.json", "{tmp}/nan_train.json"), "nan_train.json"),
    ("baselines", "--baselines", "corrupt", ["baselines", "show", "--baselines", "{tmp}/corrupt.json"], "corrupt.json"),
    (
        "baselines",
        "--baselines",
        "corrupt",
        ["baselines", "show", "--baselines", "{tmp}/baselines_latin1.json"],
        "UTF-8",
    ),
    (
        "baselines",
        "--baselines",
        "out of range",
        ["baselines", "show", "--baselines", "{tmp}/baselines_loose.json"],
        "1000pt",
    ),
    (
        "baselines",
        "--baselines",
        "unwritable",
        ["baselines", "update", "{tmp}/train.json", "--baselines", "/proc/cnn-bench/b.json"],
        "b.json",
    ),
    (
        "baselines",
        "--baselines",
        "unwritable",
        ["baselines", "update", "{tmp}/train.json", "--baselines", "{tmp}/file/b.json"],
        "b.json",
    ),
    (
        "baselines",
        "--tolerance",
        "out of range",
        update("{tmp}/train.json", "--tolerance", "top1:-1000pt"),
        "1000pt",
    ),
    ("baselines", "--tolerance", "wrong type", update("{tmp}/train.json", "--tolerance", "5"), "'5'"),
    ("baselines", "--provenance", "missing", update("{tmp}/train.json", "--provenance"), "--provenance"),
    ("baselines", "--dry-run", "wrong type", update("{tmp}/train.json", "--dry-run=1"), "1"),
    ("baselines", "--replace", "wrong type", update("{tmp}/train.json", "--replace=yes"), "yes"),
    ("baselines", "--reported", "wrong type", update("--reported=yes"), "yes"),
]

# -- fingerprint: it takes train's options (each of train's cases, asked of fingerprint) and its own


def _fingerprint_argv(argv: list[str]) -> list[str]:
    """A train case's command line for fingerprint, less TRAIN's --eager and --out (fingerprint refuses them)."""
    if argv[2 : len(TRAIN)] == TRAIN[2:]:  # TRAIN, its recipe perhaps another
        argv = [*argv[: TRAIN.index("--eager")], *argv[len(TRAIN) :]]
    return ["fingerprint", *argv[1:]]


CASES += [
    ("fingerprint", flag, kind, _fingerprint_argv(argv), named)
    for c, flag, kind, argv, named in list(CASES)
    if c == "train"
]
FINGERPRINT = ["fingerprint", RECIPE, "--mock", "4", "--budget", "steps=1"]
CASES += [
    ("fingerprint", "--check", "wrong type", [*FINGERPRINT, "--check=yes"], "--check"),
    ("fingerprint", "--record", "out of range", [*FINGERPRINT, "--check", "--record"], "--record"),
    ("fingerprint", "--baselines", "missing", [*FINGERPRINT, "--check", "--baselines", "{tmp}/nope.json"], "nope.json"),
    (
        "fingerprint",
        "--baselines",
        "corrupt",
        [*FINGERPRINT, "--check", "--baselines", "{tmp}/corrupt.json"],
        "corrupt.json",
    ),
    ("fingerprint", "--json", "unwritable", [*FINGERPRINT, "--json", "/proc/cnn-bench.json"], "/proc/cnn-bench.json"),
    ("fingerprint", "--json", "unwritable", [*FINGERPRINT, "--json", "{tmp}/dir"], "dir"),
    ("fingerprint", "--json", "missing", [*FINGERPRINT, "--json"], "--json"),
    (
        "gate",
        "--allow-improvement",
        "wrong type",
        ["gate", "{tmp}/train.json", "--allow-improvement=yes"],
        "--allow-improvement",
    ),
]

# -- ab and bisect: every measuring option is checked before an environment is built or a process started
AB = ["ab", ".", ".", "--out", "{tmp}/ab"]
BISECT = ["bisect", "--good", "HEAD~1", "--bad", "HEAD", "--out", "{tmp}/bisect"]
MEASURE = [
    ("--pairs", "out of range", ["--pairs", "1"], "--pairs 1"),
    ("--confirm-pairs", "out of range", ["--confirm-pairs", "-1"], "--confirm-pairs -1"),
    ("--max-pairs", "out of range", ["--pairs", "4", "--max-pairs", "3"], "--max-pairs 3"),
    ("--max-pairs", "out of range", ["--max-pairs", "-1"], "--max-pairs -1"),
    ("--max-pairs", "wrong type", ["--max-pairs", "many"], "many"),
    ("--detect", "out of range", ["--detect", "0"], "--detect 0"),
    ("--detect", "out of range", ["--detect", "nan"], "--detect nan"),
    ("--tolerance", "out of range", ["--tolerance", "throughput:-80%"], "80"),
    ("--baselines", "corrupt", ["--baselines", "{tmp}/corrupt.json"], "corrupt.json"),
    ("--out", "unwritable", ["--out", "/proc/cnn-bench"], "/proc/cnn-bench"),
    ("--order-seed", "out of range", ["--order-seed", "-1"], "-1"),
    ("--repo", "wrong type", ["--repo", "{tmp}/dir"], "dir"),
    ("--interleave", "wrong type", ["--interleave", "threads"], "threads"),
    ("--process-timeout", "out of range", ["--process-timeout", "0"], "--process-timeout 0"),
    ("--process-timeout", "wrong type", ["--process-timeout", "soon"], "soon"),
    ("--device", "wrong type", ["--device", "quantum"], "quantum"),
    ("--backend", "wrong type", ["--backend", "mxnet"], "mxnet"),
    ("--models", "wrong type", ["--models", "resnet_nope"], "resnet_nope"),
    ("--mode", "wrong type", ["--mode", "fly"], "fly"),
    ("--batch-size", "out of range", ["--batch-size", "0"], "0"),
    ("--precision", "wrong type", ["--precision", "fp64"], "fp64"),
    ("--xla", "wrong type", ["--xla", "maybe"], "maybe"),
    ("--compile", "wrong type", ["--compile", "maybe"], "maybe"),
    ("--data", "wrong type", ["--data", "fake"], "fake"),
    ("--steps", "out of range", ["--steps", "0"], "--steps 0"),
    ("--rounds", "out of range", ["--rounds", "1"], "--rounds 1"),
    ("--warmup-rounds", "out of range", ["--warmup-rounds", "-1"], "-1"),
    ("--round-seconds", "out of range", ["--round-seconds", "inf"], "inf"),
]
CASES += [("ab", flag, kind, [*AB, *extra], named) for flag, kind, extra, named in MEASURE]
CASES += [("bisect", flag, kind, [*BISECT, *extra], named) for flag, kind, extra, named in MEASURE]
CASES += [
    ("ab", "base", "wrong type", ["ab", "svn:trunk", "--out", "{tmp}/ab"], "svn:trunk"),
    ("ab", "base", "missing", ["ab", "", "--out", "{tmp}/ab"], "a side is empty"),
    ("ab", "--out", "wrong type", ["ab", ".", ".", "--out", "{tmp}/{when}"], "{when}"),
    ("bisect", "--out", "wrong type", ["bisect", "--good", "HEAD~1", "--bad", "HEAD", "--out", "{tmp}/{when"], "{when"),
    ("ab", "--seeds", "wrong type", [*AB, "--seeds", "5"], "--seeds without --recipe"),
    ("ab", "--models", "wrong type", [*AB, "--recipe", RECIPE, "--models", "resnet20"], "--models with --recipe"),
    ("ab", "head", "wrong type", ["ab", ".", "hg:tip", "--out", "{tmp}/ab"], "hg:tip"),
    ("ab", "--calibrate", "out of range", ["ab", "git:HEAD", ".", "--calibrate", "--out", "{tmp}/ab"], "--calibrate"),
    ("ab", "--recipe", "wrong type", [*AB, "--recipe", "nope_recipe"], "nope_recipe"),
    ("ab", "--baselines", "wrong type", [*AB, "--baselines", "{tmp}/calibration_text.json"], "threshold is '2%'"),
    ("ab", "--seeds", "out of range", [*AB, "--recipe", RECIPE, "--seeds", "1"], "--seeds 1"),
    ("ab", "--budget", "wrong type", [*AB, "--recipe", RECIPE, "--budget", "hours=1"], "hours=1"),
    (
        "bisect",
        "--good",
        "wrong type",
        ["bisect", "--good", "no-such-ref", "--bad", "HEAD", "--out", "{tmp}/b"],
        "no-such-ref",
    ),
    ("bisect", "--bad", "missing", ["bisect", "--good", "HEAD~1", "--out", "{tmp}/b"], "--bad"),
    ("bisect", "--reruns", "out of range", [*BISECT, "--reruns", "-1"], "--reruns -1"),
    ("bisect", "--reruns", "wrong type", [*BISECT, "--reruns", "twice"], "twice"),
    ("bisect", "--package", "missing", ["bisect", "--versions", "3.14.0,3.15.1", "--out", "{tmp}/b"], "--package"),
    (
        "bisect",
        "--versions",
        "out of range",
        ["bisect", "--package", "keras", "--versions", "3.15.1", "--out", "{tmp}/b"],
        "--versions",
    ),
    (
        "bisect",
        "--versions",
        "latest before the end",
        ["bisect", "--package", "keras", "--versions", "3.14.0,latest,3.15.1", "--out", "{tmp}/b"],
        "can only be the last",
    ),
    (
        "bisect",
        "--versions",
        "out of range",
        ["bisect", "--package", "keras", "--versions", "3.14,3.15.1,3.14.0", "--out", "{tmp}/b"],
        "3.14.0 is there twice",
    ),
]


# -- sharding (issue #11): throughput --shard i/N and merge, in one block of their own
def _shard(index: int, count: int = 2, change=None, plan_options=(), **kwargs) -> str:
    """Shard ``index``/``count`` of the merge tests' plan, as ``throughput --shard`` writes it."""
    from tests.throughput.shard_documents import plan, shard_doc

    doc = shard_doc(plan(**dict(plan_options)), index, count, **kwargs)
    if change:
        change(doc)
    return json.dumps(doc)


FILES.update(
    {
        "shard1.json": _shard(1),
        "shard2.json": _shard(2),
        "shard2_rounds5.json": _shard(2, plan_options={"rounds": 5}),
        "shard2_commit.json": _shard(2, commit="def456"),
        "shard2_index_text.json": _shard(2, change=lambda d: d["harness"]["shard"].update(index="two")),
        "shard2_of_3.json": _shard(2, 3),
    }
)
MERGE_OUT = ["--out", "{tmp}/all.json"]
SHARDS = ["{tmp}/shard1.json", "{tmp}/shard2.json"]
CASES += [
    ("throughput", "--shard", "out of range", ["throughput", "--shard", "3/2"], "'3/2'"),
    ("throughput", "--shard", "out of range", ["throughput", "--shard", "0/2"], "'0/2'"),
    ("throughput", "--shard", "out of range", ["throughput", "--shard", "1/0"], "'1/0'"),
    ("throughput", "--shard", "wrong type", ["throughput", "--shard", "half"], "'half'"),
    ("throughput", "--shard", "wrong type", ["throughput", "--shard", "1.5/2"], "'1.5/2'"),
    ("throughput", "--shard", "missing", ["throughput", "--shard"], "--shard"),
    ("merge", "results", "missing", ["merge", *MERGE_OUT], "results"),
    ("merge", "results", "missing", ["merge", "{tmp}/nope.json", *MERGE_OUT], "nope.json"),
    ("merge", "results", "missing", ["merge", "{tmp}/shard1.json", *MERGE_OUT], "shard 2 of 2 is missing"),
    ("merge", "results", "corrupt", ["merge", "{tmp}/shard1.json", "{tmp}/corrupt.json", *MERGE_OUT], "corrupt.json"),
    ("merge", "results", "corrupt", ["merge", "{tmp}/latin1.json", *MERGE_OUT], "UTF-8"),
    ("merge", "results", "wrong type", ["merge", "{tmp}/list.json", *MERGE_OUT], "list.json"),
    ("merge", "results", "wrong type", ["merge", "{tmp}/train.json", *MERGE_OUT], "train.json"),
    ("merge", "results", "wrong type", ["merge", "{tmp}/dir", *MERGE_OUT], "dir"),
    ("merge", "results", "wrong type", ["merge", "{tmp}/median_text.json", *MERGE_OUT], "median"),
    ("merge", "results", "wrong type", ["merge", "{tmp}/throughput.json", *MERGE_OUT], "not a shard's result"),
    ("merge", "results", "wrong type", ["merge", "{tmp}/shard2_index_text.json", *MERGE_OUT], "'index'"),
    (
        "merge",
        "results",
        "out of range",
        ["merge", "{tmp}/shard1.json", "{tmp}/shard2_rounds5.json", *MERGE_OUT],
        "different plans",
    ),
    (
        "merge",
        "results",
        "out of range",
        ["merge", "{tmp}/shard1.json", "{tmp}/shard2_of_3.json", *MERGE_OUT],
        "split into 2 and 3 shards",
    ),
    (
        "merge",
        "results",
        "out of range",
        ["merge", "{tmp}/shard1.json", "{tmp}/shard2_commit.json", *MERGE_OUT],
        "different commits",
    ),
    ("merge", "results", "out of range", ["merge", *SHARDS, "{tmp}/shard2.json", *MERGE_OUT], "given twice"),
    ("merge", "--out", "missing", ["merge", *SHARDS], "--out"),
    ("merge", "--out", "missing", ["merge", *SHARDS, "--out"], "--out"),
    ("merge", "--out", "unwritable", ["merge", *SHARDS, "--out", "/proc/cnn-bench.json"], "/proc/cnn-bench.json"),
    ("merge", "--out", "unwritable", ["merge", *SHARDS, "--out", "{tmp}/dir"], "dir"),
    ("merge", "--out", "unwritable", ["merge", *SHARDS, "--out", "{tmp}/file/all.json"], "all.json"),
    (
        "merge",
        "--allow-partial",
        "wrong type",
        ["merge", *SHARDS, *MERGE_OUT, "--allow-partial=yes"],
        "--allow-partial",
    ),
]
# -- end of the sharding block


# -- one job over several workers (issue #11, bench.cluster): train's, fingerprint's and throughput's cluster flags
CLUSTER = ["--cluster", "10.0.0.1:2222,10.0.0.2:2222"]
CASES += [
    ("train", "--workers", "out of range", [*TRAIN, "--workers", "0"], "--workers 0"),
    ("train", "--workers", "wrong type", [*TRAIN, "--workers", "two"], "two"),
    ("train", "--workers", "out of range", [*TRAIN, "--workers", "3"], "--workers 3 does not divide the batch size"),
    ("train", "--workers", "out of range", [*TRAIN, "--workers", "2", "--budget", "minutes=1"], "minutes=1"),
    ("train", "--workers", "out of range", [*TRAIN, "--workers", "2", *CLUSTER, "--task-index", "0"], "--workers 2"),
    ("train", "--cluster", "wrong type", [*TRAIN, "--cluster", "nohost,other", "--task-index", "0"], "nohost"),
    ("train", "--cluster", "out of range", [*TRAIN, "--cluster", "h:1,h:70000", "--task-index", "0"], "70000"),
    ("train", "--cluster", "out of range", [*TRAIN, "--cluster", "h:1", "--task-index", "0"], "names 1 worker"),
    ("train", "--cluster", "missing", [*TRAIN, "--cluster"], "--cluster"),
    ("train", "--cluster", "wrong type", [*TRAIN, *CLUSTER, "--task-index", "0", "--backend", "torch"], "torch"),
    ("train", "--cluster", "wrong type", [*TRAIN, *CLUSTER, "--task-index", "0", "--device", "tpu"], "TPU pod"),
    ("train", "--task-index", "missing", [*TRAIN, *CLUSTER], "--task-index 0 to 1"),
    ("train", "--task-index", "out of range", [*TRAIN, *CLUSTER, "--task-index", "2"], "--task-index 2"),
    ("train", "--task-index", "out of range", [*TRAIN, "--task-index", "1"], "--task-index 1 needs --cluster"),
    ("train", "--task-index", "wrong type", [*TRAIN, "--task-index", "one"], "one"),
    ("train", "--worker-timeout", "out of range", [*TRAIN, "--worker-timeout", "0"], "--worker-timeout 0"),
    ("train", "--worker-timeout", "out of range", [*TRAIN, "--worker-timeout", "nan"], "nan"),
    ("train", "--worker-timeout", "wrong type", [*TRAIN, "--worker-timeout", "soon"], "soon"),
    ("fingerprint", "--workers", "out of range", [*FINGERPRINT, "--workers", "2"], "--workers 2 is train's"),
    ("fingerprint", "--cluster", "out of range", [*FINGERPRINT, *CLUSTER, "--task-index", "0"], "--cluster"),
    ("fingerprint", "--task-index", "out of range", [*FINGERPRINT, "--task-index", "0"], "--task-index 0"),
    ("fingerprint", "--worker-timeout", "out of range", [*FINGERPRINT, "--worker-timeout", "5"], "--worker-timeout"),
    ("throughput", "--workers", "out of range", ["throughput", "--workers", "0"], "--workers 0"),
    ("throughput", "--workers", "wrong type", ["throughput", "--workers", "2", "--backend", "tensorflow,jax"], "jax"),
    ("throughput", "--workers", "out of range", ["throughput", "--workers", "3"], "--batch-size 128"),
    ("throughput", "--cluster", "out of range", ["throughput", "--cluster", "h:1", "--task-index", "0"], "1 worker"),
    ("throughput", "--cluster", "wrong type", ["throughput", *CLUSTER, "--task-index", "0", "--data", "real"], "real"),
    ("throughput", "--task-index", "out of range", ["throughput", *CLUSTER, "--task-index", "5"], "--task-index 5"),
    ("throughput", "--task-index", "missing", ["throughput", "--task-index", "0"], "needs --cluster"),
    ("throughput", "--worker-timeout", "out of range", ["throughput", "--worker-timeout", "-1"], "-1"),
    ("throughput", "--worker-timeout", "wrong type", ["throughput", "--worker-timeout", "x"], "'x'"),
]
# impossible values, wrongly shaped fingerprints and samples, empty paths, arguments show ignores
CASES += [
    ("gate", "results", "missing", ["gate", ""], "''"),
    ("gate", "--json", "missing", ["gate", "{tmp}/train.json", "--json", ""], "--json ''"),
    (
        "gate",
        "--baselines",
        "wrong type",
        ["gate", "{tmp}/train.json", "--baselines", "{tmp}/baselines_samples_list.json"],
        "samples [1, 2]",
    ),
    ("baselines", "results", "wrong type", update("{tmp}/fp_model_text.json"), "'fingerprint'"),
    ("baselines", "results", "out of range", update("{tmp}/loss_negative.json"), "'loss' is -0.5"),
    ("baselines", "results", "out of range", update("{tmp}/ok_with_error.json"), "boom"),
    ("baselines", "results", "out of range", update("{tmp}/steps_negative.json"), "'steps_run' is -1170"),
    ("baselines", "results", "missing", update("{tmp}/reported_bare.json"), "'dataset' is missing"),
    ("baselines", "results", "out of range", ["baselines", "show", "{tmp}/train.json"], "train.json"),
    (
        "baselines",
        "--baselines",
        "wrong type",
        ["baselines", "show", "--baselines", "{tmp}/baselines_samples_list.json"],
        "samples [1, 2]",
    ),
    ("fingerprint", "--json", "missing", [*FINGERPRINT, "--json", ""], "--json ''"),
    ("fingerprint", "--record", "out of range", [*FINGERPRINT, "--record", "--set", "schedule.base=0.1"], "--set"),
    ("fingerprint", "--record", "out of range", [*FINGERPRINT, "--record", "--precision", "mixed_bf16"], "mixed_bf16"),
]
BAD_TF_CONFIG = {
    "not JSON": ("{cluster", "TF_CONFIG is not valid JSON"),
    "no cluster": ('{"task": {"type": "worker", "index": 0}}', "TF_CONFIG has no 'cluster'"),
    "a parameter server": ('{"cluster": {"worker": ["h:1"], "ps": ["h:2"]}, "task": {}}', "job 'ps'"),
    "an index out of range": ('{"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 7}}', "7"),
}


@pytest.mark.parametrize("command", ["train", "throughput"])
@pytest.mark.parametrize("value,token", BAD_TF_CONFIG.values(), ids=list(BAD_TF_CONFIG))
def test_a_bad_tf_config_is_one_line_and_exit_2(command, value, token, case_dir, capsys, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", value)
    before = _files(case_dir)
    code, out, err = _run(TRAIN if command == "train" else ["throughput"], case_dir, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and token in lines[0], (out + err)[-2000:]
    assert _files(case_dir) == before


# a bad result file given to gate: that file's ERROR finding (exit 1), the other files still judged
# (a directory's other JSON, such as throughput results, is skipped; a file named is judged)
GATE_FILES = [
    ("wrong type", "fp_model_text.json", "'fingerprint' has recipe", True),
    ("out of range", "loss_negative.json", "'loss' is -0.5", True),
    ("out of range", "ok_with_error.json", "boom", True),
    ("corrupt", "corrupt.json", "not valid JSON", False),
    ("corrupt", "latin1.json", "UTF-8", False),
    ("wrong type", "list.json", "not a training result", True),
    ("wrong type", "top1_text.json", "'top1'", False),
    ("wrong type", "seed_text.json", "'seed'", False),
    ("wrong type", "status_odd.json", "maybe", False),
    ("wrong type", "throughput.json", "not a training result", True),
    ("out of range", "top1_huge.json", "1000000000", False),
]


def _files(tmp: Path) -> dict[str, str]:
    return {
        str(p.relative_to(tmp)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(tmp.rglob("*"))
    }


@pytest.fixture
def case_dir(tmp_path, monkeypatch):
    """The case's files, and the working directory (default outputs such as results/ land here)."""
    for name, content in FILES.items():
        path = tmp_path / name
        if content is None:
            path.mkdir()
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    return tmp_path


def _run(argv: list[str], tmp: Path, capsys) -> tuple[int, str, str]:
    argv = [a.replace("{tmp}", str(tmp)) for a in argv]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "command,flag,kind,argv,token", CASES, ids=[f"{c}:{f}:{k}:{' '.join(a[1:])}" for c, f, k, a, _ in CASES]
)
def test_a_bad_input_is_one_line_and_exit_2(command, flag, kind, argv, token, case_dir, capsys):
    before = _files(case_dir)
    code, out, err = _run(argv, case_dir, capsys)
    lines = err.strip().splitlines()
    assert code == 2, (out + err)[-2000:]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    assert token in lines[0], lines[0]
    assert _files(case_dir) == before  # nothing written, nothing changed


@pytest.mark.parametrize("kind,name,reason,named", GATE_FILES, ids=[f"{k}:{n}" for k, n, *_ in GATE_FILES])
def test_a_bad_result_file_is_its_own_gate_error(kind, name, reason, named, case_dir, capsys):
    results = case_dir / "results"
    results.mkdir()
    shutil.copy(case_dir / name, results / name)
    shutil.copy(case_dir / "train.json", results / "good.json")
    given = [str(results / name), str(results / "good.json")] if named else [str(results)]
    code, out, err = _run(["gate", *given, "--baselines", "{tmp}/baselines.json"], case_dir, capsys)
    assert code == 1 and not err.strip() and "Traceback" not in out
    (bad,) = [line for line in out.splitlines() if line.startswith(name)]
    assert "ERROR" in bad and reason in bad
    assert any(line.startswith("smoke_resnet20") and "PASS" in line for line in out.splitlines())


def _flags(command: str) -> set[str]:
    parser = argparse.ArgumentParser()
    importlib.import_module(f"bench.commands.{command}").add_arguments(parser)
    return {a.option_strings[0] if a.option_strings else a.dest for a in parser._actions if a.dest != "help"}


def test_the_table_walks_every_flag_of_every_command():
    tried = {(c, f) for c, f, *_ in CASES} | {("gate", "results")}
    for command in COMMANDS:
        missing = {f for f in _flags(command) if (command, f) not in tried}
        assert not missing, f"{command}: no bad-input case for {sorted(missing)}"


def test_case_count():
    """The closing note's figure: the cases the tables try."""
    assert len(CASES) + len(GATE_FILES) >= 150
