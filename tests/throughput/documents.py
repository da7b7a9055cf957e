"""Hand-built throughput result documents for the summary and report tests: the shapes
bench.throughput.measure records, with new-style cases (``compile``, ``backend``) and old-style ones
(``xla``, no backend)."""

from __future__ import annotations

from bench.throughput.workload import Case

DC = "cpu:Test CPU x2"


def case(model="resnet20", mode="train", batch_size=128, precision="fp32", compile="off", backend="tensorflow"):
    """A new-style case dict (``compile`` and ``backend``), as the suite writes it today."""
    return Case(model, mode, batch_size, precision, compile, "synthetic", backend).to_dict()


def old_case(model="resnet20", mode="train", batch_size=128, precision="fp32", xla="off"):
    """A case dict from a result file written before the backend axis: ``xla``, no ``backend``."""
    return {
        "model": model,
        "mode": mode,
        "batch_size": batch_size,
        "precision": precision,
        "xla": xla,
        "data": "synthetic",
    }


def old_id(c: dict) -> str:
    return f"{c['model']}-{c['mode']}-bs{c['batch_size']}-{c['precision']}-xla_{c['xla']}-{c['data']}"


def bench(c, median, *, q1=None, q3=None, cv=0.02, noisy=False, utilization=0.4321, compile_s=3.456, dc=DC, bid=None):
    """One pytest-benchmark entry whose extra_info is what bench.throughput.measure records."""
    bid = bid or (old_id(c) if "xla" in c else Case.from_dict(c).id)
    q1 = median * 0.98 if q1 is None else q1
    q3 = median * 1.02 if q3 is None else q3
    return {
        "name": f"test_throughput[{bid}]",
        "param": bid,
        "extra_info": {
            "id": bid,
            "case": c,
            "device": "cpu",
            "device_class": dc,
            "images_per_s": {
                "median": median,
                "q1": q1,
                "q3": q3,
                "iqr": q3 - q1,
                "min": q1,
                "max": q3,
                "mean": median,
                "samples": [q1, median, q3],
            },
            "cv": cv,
            "noisy": noisy,
            "utilization": utilization,
            "compile_s": compile_s,
            "steps_per_round": 4,
            "peak_memory_bytes": None,
        },
        "stats": {"median": 1.0},
    }


def error(c, message, *, dc=DC):
    bid = old_id(c) if "xla" in c else Case.from_dict(c).id
    return {"id": bid, "case": c, "device": "cpu", "device_class": dc, "error": message}


def doc(benchmarks, errors=(), dc=DC):
    return {
        "benchmarks": list(benchmarks),
        "errors": list(errors),
        "harness": {"kind": "throughput", "schema": 1, "device_class": dc},
        "machine_info": {"keras": "3.15.1"},
    }
