"""Checks of the suite itself, run by hand (benchmark figures, not timed tests):

``python -m bench.throughput.figures overhead --models resnet20,resnet50``
    The suite's train images/s against a bare hand-written loop over the same compiled step,
    alternating suite and bare runs (separate processes) ``--pairs`` times; ratio of medians.
``python -m bench.throughput.figures reference --batch-size 8``
    The project's resnet50 against keras.applications.ResNet50(weights=None), same settings, in one
    process, alternating; ratio of medians (> 1: ours is faster).
``python -m bench.throughput.figures slowdown --delay 0.10 -- SUITE OPTIONS``
    Runs the suite with a real slowdown injected: after every step, sleep 10 % of the step's own
    measured duration, so each round takes ~10 % longer. ``compare`` must flag it.
``python -m bench.throughput.figures cv RESULT.json ...``
    Run-to-run coefficient of variation of each benchmark's median over several saved runs.
``python -m bench.throughput.figures device-timing --model resnet50 --precision mixed_bf16`` (GPU, torch)
    The suite's host-timed train rounds against CUDA events around the same rounds; ratio of rates.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
SUITE = Path(__file__).resolve().parent / "suite"


def bare(
    model: str, batch_size: int, rounds: int, steps: int, *, keras_reference: bool = False, mode: str = "train"
) -> list[float]:
    """images/s of ``rounds`` plain loops of ``steps`` steps over the compiled step (no pytest, no fixture)."""
    from bench import devices
    from bench.backends import tensorflow
    from bench.throughput import workload

    placement = tensorflow.open("cpu")
    devices.set_precision("fp32")
    model_fn = None
    if keras_reference:
        import keras

        model_fn = lambda: keras.applications.ResNet50(weights=None)  # noqa: E731
    w = workload.build(
        workload.Case(model, mode, batch_size), placement, jit_compile=tensorflow.jit_compile("off"), model_fn=model_fn
    )
    w.sync(w.step())  # compile
    w.sync(w.step())  # warm
    rates = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(steps):
            out = w.step()
        w.sync(out)
        rates.append(steps * batch_size / (time.perf_counter() - t0))
    workload.release(w)
    return rates


def _suite_median(model: str, batch_size: int, rounds: int, steps: int, out: Path) -> float:
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(SUITE),
        "-q",
        "-p",
        "no:cacheprovider",
        "--models",
        model,
        "--mode",
        "train",
        "--batch-size",
        str(batch_size),
        "--rounds",
        str(rounds),
        "--max-rounds",
        str(rounds),
        "--steps",
        str(steps),
        "--bench-out",
        str(out),
        "--benchmark-disable-gc",
    ]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())["benchmarks"][0]["extra_info"]["images_per_s"]["median"]


def overhead(args) -> None:
    for model in args.models.split(","):
        bs = args.batch_size or (128 if model.startswith("resnet2") else 8)
        suite, hand = [], []
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.pairs):
                load = os.getloadavg()[0]
                cmd = [
                    sys.executable,
                    "-m",
                    "bench.throughput.figures",
                    "bare",
                    model,
                    str(bs),
                    str(args.rounds),
                    str(args.steps),
                ]
                order = ("suite", "bare") if i % 2 == 0 else ("bare", "suite")  # alternate, so load drift cancels
                for which in order:
                    if which == "suite":
                        suite.append(_suite_median(model, bs, args.rounds, args.steps, Path(tmp) / f"{i}.json"))
                    else:
                        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                        hand.append(statistics.median(json.loads(out)))
                print(
                    f"{model} bs{bs} pair {i}: suite {suite[-1]:.1f} img/s, bare {hand[-1]:.1f} img/s (load {load:.2f}->{os.getloadavg()[0]:.2f})",
                    flush=True,
                )
        print(f"{model}: suite/bare = {statistics.median(suite) / statistics.median(hand):.3f}")


def reference(args) -> None:
    ours, theirs = [], []
    for i in range(args.pairs):
        load = os.getloadavg()[0]
        ours += bare("resnet50", args.batch_size, args.rounds, args.steps)
        theirs += bare("resnet50", args.batch_size, args.rounds, args.steps, keras_reference=True)
        print(
            f"pair {i}: ours {statistics.median(ours):.2f}, keras.applications {statistics.median(theirs):.2f} img/s (load {load:.2f})",
            flush=True,
        )
    print(
        f"resnet50 ours/keras.applications (train, bs{args.batch_size}, fp32, CPU) = {statistics.median(ours) / statistics.median(theirs):.3f}"
    )


class _Slowdown:
    """A pytest plugin: every step sleeps ``delay`` x its own duration after it ran."""

    def __init__(self, delay: float):
        self.delay = delay

    def pytest_configure(self, config):
        from bench.throughput import workload

        original = workload.build

        def slowed(*a, **k):
            w = original(*a, **k)
            step = w.step

            def slow_step():
                t0 = time.perf_counter()
                out = step()
                w.sync(out)  # the step's real duration, then a proportional pause
                time.sleep(self.delay * (time.perf_counter() - t0))
                return out

            w.step = slow_step
            return w

        workload.build = slowed


def slowdown(args) -> int:
    import pytest

    return int(pytest.main([str(SUITE), *args.suite_args], plugins=[_Slowdown(args.delay)]))


def cv(args) -> int:
    """Run-to-run CV of each benchmark's median, keyed ``<device class>/<case>`` (two machines' runs of
    one case are two benchmarks, not one's spread). Files are read as ``report`` reads them (checked,
    each run once); errored cases are named and left out. A bad file is one line and exit 2."""
    from bench.errors import UsageError
    from bench.regression.throughput import results
    from bench.throughput.report import load

    try:
        docs = load(args.results)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    by_key: dict[str, list[float]] = {}
    for path, doc in zip(args.results, docs):
        for r in results(doc):
            if r["error"]:
                print(f"{r['key']}: left out the run in {path}: {r['error'].splitlines()[0]}")
            else:
                by_key.setdefault(r["key"], []).append(r["median"])
    for key, medians in by_key.items():
        c = f"{statistics.stdev(medians) / statistics.mean(medians):.2%}" if len(medians) > 1 else "- (one run)"
        print(f"{key}: medians {[round(m, 1) for m in medians]}, run-to-run CV {c}")
    return 0


def device_timing(args) -> None:
    """The suite's host-timed rounds against CUDA events recorded on the GPU around the same rounds
    (torch): the host clock, which ends with the read-back, must agree with the device's own."""
    import torch

    from bench import devices
    from bench.throughput import measure, timing, workload

    session = measure.DeviceSession.open("gpu", backend="torch")
    devices.set_precision(args.precision)
    case = workload.Case(args.model, "train", args.batch_size, args.precision, args.compile, backend="torch")
    w = workload.build(case, session.placement, jit_compile=session.backend.jit_compile(args.compile))
    w.sync(w.step())  # compile
    steps = timing.steps_for(timing.time_call(lambda: w.sync(w.step())), args.round_seconds)
    host, device = [], []
    for _ in range(args.rounds):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def run_round(start=start, end=end):
            out = None
            start.record()
            for _ in range(steps):
                out = w.step()
            end.record()
            return w.sync(out)

        host.append(timing.time_call(run_round))
        device.append(start.elapsed_time(end) / 1000.0)
    images = steps * args.batch_size
    h, d = statistics.median(images / t for t in host), statistics.median(images / t for t in device)
    result = {
        "case": case.id,
        "device_class": session.device_class,
        "steps_per_round": steps,
        "host_images_per_s": h,
        "cuda_event_images_per_s": d,
        "host_over_device": h / d,
        "host_round_s": host,
        "cuda_event_round_s": device,
    }
    print(json.dumps(result, indent=1))
    if args.out:
        from bench.io import write_json

        write_json(args.out, result)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.throughput.figures", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("overhead")
    o.add_argument("--models", default="resnet20,resnet50")
    o.add_argument("--batch-size", type=int, default=None)
    o.add_argument("--rounds", type=int, default=5)
    o.add_argument("--steps", type=int, default=2)
    o.add_argument("--pairs", type=int, default=2)
    r = sub.add_parser("reference")
    r.add_argument("--batch-size", type=int, default=8)
    r.add_argument("--rounds", type=int, default=4)
    r.add_argument("--steps", type=int, default=1)
    r.add_argument("--pairs", type=int, default=2)
    b = sub.add_parser("bare")
    b.add_argument("model")
    b.add_argument("batch_size", type=int)
    b.add_argument("rounds", type=int)
    b.add_argument("steps", type=int)
    s = sub.add_parser("slowdown")
    s.add_argument("--delay", type=float, default=0.10)
    s.add_argument("suite_args", nargs="*")
    c = sub.add_parser("cv")
    c.add_argument("results", nargs="+")
    d = sub.add_parser("device-timing")
    d.add_argument("--model", default="resnet50")
    d.add_argument("--batch-size", type=int, default=128)
    d.add_argument("--precision", default="mixed_bf16")
    d.add_argument("--compile", default="off")
    d.add_argument("--rounds", type=int, default=10)
    d.add_argument("--round-seconds", type=float, default=1.0)
    d.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.cmd == "bare":
        print(json.dumps(bare(args.model, args.batch_size, args.rounds, args.steps)))
        return 0
    commands = {"overhead": overhead, "reference": reference, "slowdown": slowdown, "cv": cv}
    return (commands | {"device-timing": device_timing})[args.cmd](args) or 0


if __name__ == "__main__":
    sys.exit(main())
