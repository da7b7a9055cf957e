"""Synthetic A/B processes: per-case medians drawn around a true rate, with a side's slowdown and a
machine drift that slows every process after a point alike."""

from __future__ import annotations

import numpy as np

CASES = {
    "resnet20-train-bs128-fp32-xla_off-synthetic-tensorflow": 500.0,
    "resnet20-infer-bs128-fp32-xla_off-synthetic-tensorflow": 1800.0,
}


def fake_measure(*, slowdown: float = 0.0, cv: float = 0.01, drift=lambda i: 1.0, seed: int = 0, errors=()):
    """A ``measure_one(prepared, index)`` for ``runner.run_pairs``: HEAD runs ``slowdown`` slower;
    process ``index`` runs at ``drift(index)`` of its speed; ``cv`` is the process-to-process spread."""
    rng = np.random.default_rng(seed)

    def measure_one(prepared, index):
        factor = drift(index) * ((1.0 - slowdown) if prepared.label == "HEAD" else 1.0)
        cases = {}
        for key, rate in CASES.items():
            median = rate * factor * float(np.exp(rng.normal(0.0, cv)))
            cases[key] = {"median": median, "samples": [median] * 5, "error": "oom" if key in errors else None}
        return {"cases": cases, "loadavg_before": [1.0, 1.0, 1.0], "device_class": "cpu:fake x2", "wall_s": 0.0}

    return measure_one


class Labelled:
    """Stands in for a ``runner.Prepared``: only its label is read."""

    def __init__(self, label: str):
        self.label = label


SIDES = (Labelled("BASE"), Labelled("HEAD"))
