"""How ``python -m bench train`` ends: the line of a finished run (``bench.commands.train.summary``), and
the line after Ctrl-C or SIGTERM."""

import os
import signal
import threading
import time

import pytest

from bench.__main__ import main
from bench.commands.train import summary

RESULT = {
    "recipe": "smoke_resnet20_cifar10_jpeg",
    "dataset": "mock_cifar10_jpeg",
    "budget": "steps=4",
    "seed": 0,
    "top1": 21.875,
    "top1_no_tta": 20.3125,
    "loss": 5.34861,
    "test_examples": 32,
    "wall_time_s": 47.4,
    "images_per_s": 412.5,
}
JOB = {"workers": 2, "weights_sha256": "ab" * 32, "workers_agree": True}


def test_the_summary_names_the_figures_and_the_file():
    assert summary(RESULT, "out/run.json") == (
        "smoke_resnet20_cifar10_jpeg on mock_cifar10_jpeg, steps=4, seed 0: top-1 21.88% (no TTA 20.31%), "
        "loss 5.3486, 32 test images, 47 s, 412.5 img/s; wrote out/run.json"
    )


def test_a_run_with_no_timed_step_says_why_instead_of_none():
    """A process's first step compiles and is not timed: a one-step run has no rate, and says why."""
    line = summary({**RESULT, "images_per_s": None}, "out/run.json")
    assert "None" not in line and "47 s, img/s not measured (no step after a process's first); wrote" in line


def test_a_job_adds_its_workers_rate_and_weights():
    line = summary({**RESULT, "cluster": JOB, "images_per_s_per_worker": 206.25}, "r.json")
    assert "412.5 img/s over 2 workers (206.25 img/s each), weights sha256 abababababababab (the same on every" in line
    line = summary({**RESULT, "cluster": {**JOB, "workers_agree": False}, "images_per_s": None}, "r.json")
    assert "not measured (no step after a process's first) over 2 workers, weights sha256" in line
    assert "NOT the same on every worker" in line and "None" not in line


@pytest.mark.parametrize("how, status", [("SIGINT", 130), ("SIGTERM", 143)])
def test_ctrl_c_or_sigterm_ends_training_in_one_line_that_says_how_to_resume(
    how, status, tmp_path, monkeypatch, capsys
):
    """SIGTERM (a job's timeout, a cancelled CI run) takes Ctrl-C's path: the ``finally`` blocks run
    (a signal's default action would skip them), one line says how to resume, and the status is the
    shell's for that signal."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers belong to the main thread")
    from bench.commands import train as command

    def killed_while_training(recipe, opts):
        try:
            os.kill(os.getpid(), getattr(signal, how))
            time.sleep(5)  # the handler raises here
        finally:
            cleaned.append(True)
        raise AssertionError("the signal did not end the run")

    cleaned = []
    monkeypatch.setattr(command, "train", killed_while_training)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        assert main(["train", "smoke_resnet20_cifar10_jpeg", "--out", str(tmp_path)]) == status
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert cleaned == [True] and signal.getsignal(signal.SIGTERM) is previous
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("interrupted: " if how == "SIGINT" else "terminated (SIGTERM): ")
    assert line.endswith(
        f"resumes from the last finished epoch's checkpoint (in {tmp_path / '.checkpoints'}; --fresh starts over)"
    )
