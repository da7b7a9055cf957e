"""The line ``python -m bench train`` ends with (``bench.commands.train.summary``)."""

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
