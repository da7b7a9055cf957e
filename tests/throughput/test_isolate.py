"""A child process per model (or case): a crash is its case's error, the sweep goes on, and the merged
result file is valid and current after every case (bench.throughput.isolate)."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bench import results
from bench.throughput import isolate
from bench.throughput.plan import ThroughputPlan
from bench.throughput.workload import Case

REPO = Path(__file__).resolve().parents[2]

# A stand-in for ``python -m bench.throughput.isolate SPEC``: the same files, no framework. $FAKE_CHILD
# says what happens as a case starts: "<case id substring>=<SIGNAL | exit status | sleep>", comma-separated;
# "startup=<status>" exits before the first case.
FAKE_CHILD = f"""
import json, os, signal, sys, time
sys.path.insert(0, {str(REPO)!r})
from bench.io import write_json
from bench.throughput.workload import Case
from tests.throughput.documents import bench, doc

spec = json.load(open(sys.argv[1]))
out = spec["plan"]["bench_out"]
progress = open(spec["progress"], "a", buffering=1)
note = lambda **record: progress.write(json.dumps(record) + "\\n")
actions = dict(a.split("=") for a in os.environ.get("FAKE_CHILD", "").split(",") if a)
cases = [Case(**c) for c in spec["plan"]["cases"] if os.environ.get("FAKE_K", "") in Case(**c).id]  # as -k selects
note(device_class="cpu:Fake x2")
if "startup" in actions:
    sys.exit(int(actions["startup"]))
note(selected=[c.id for c in cases])
result = doc([], dc="cpu:Fake x2")
result["harness"]["backend"] = result["machine_info"]["backend"] = cases[0].backend
try:
    for c in cases:
        note(start=c.id, nodeid="suite::test_throughput[" + c.id + "]")
        for part, what in actions.items():
            if part in c.id:
                if what == "sleep":
                    time.sleep(60)
                elif what.isdigit():
                    os._exit(int(what))
                else:
                    os.kill(os.getpid(), signal.Signals[what])
        result["benchmarks"].append(bench(c.to_dict(), 100.0))
        write_json(out, {{**result, "partial": True}})
        note(finish=c.id)
except KeyboardInterrupt:
    sys.exit(130)
write_json(out, result)
"""


def fake(spec: Path) -> list[str]:
    return [sys.executable, "-c", FAKE_CHILD, str(spec)]


def plan(tmp_path, isolate_mode="model", cases=None) -> ThroughputPlan:
    cases = cases or [Case("tiny_a", "train", 8), Case("tiny_a", "infer", 8), Case("tiny_b", "infer", 8)]
    return ThroughputPlan(
        backends=("tensorflow",),
        device="cpu",
        tpu=None,
        cases=tuple(cases),
        rounds=2,
        warmup_rounds=0,
        max_rounds=2,
        max_cv=0.05,
        round_seconds=1.0,
        steps=1,
        cpu_replicas=1,
        seed=0,
        data_archive=None,
        bench_out=str(tmp_path / "r.json"),
        plot=None,
        isolate=isolate_mode,
    )


def sweep(tmp_path, monkeypatch, actions: str, mode="model") -> tuple[int, dict]:
    monkeypatch.setenv("FAKE_CHILD", actions)
    p = plan(tmp_path, mode)
    status = isolate.run(p, [], command=fake)
    return status, results.read(p.bench_out)  # the one schema reader: a valid throughput result


def ids(doc, field):
    return [e.get("id") or e["extra_info"]["id"] for e in doc[field]]


A_TRAIN, A_INFER, B_INFER = (c.id for c in plan(Path("/")).cases)


def test_a_child_killed_in_its_first_case_is_that_case_error_and_the_rest_run_in_a_fresh_child(tmp_path, monkeypatch):
    status, doc = sweep(tmp_path, monkeypatch, "tiny_a-train=SIGKILL")
    assert status == 1 and "partial" not in doc
    assert ids(doc, "benchmarks") == [A_INFER, B_INFER]
    (error,) = doc["errors"]
    assert error["id"] == A_TRAIN and error["device_class"] == "cpu:Fake x2" and error["exit_status"] == -9
    assert error["error"].startswith("killed by SIGKILL (out of memory?); peak RSS ")
    assert error["peak_rss_bytes"] > 0 and error["fullname"] == f"suite::test_throughput[{A_TRAIN}]"
    processes = doc["harness"]["processes"]
    assert [p["cases"] for p in processes] == [[A_TRAIN, A_INFER], [A_INFER], [B_INFER]]
    assert [p["status"] for p in processes] == [-9, 0, 0]


def test_a_crash_after_a_finished_case_keeps_it_and_names_the_signal(tmp_path, monkeypatch):
    status, doc = sweep(tmp_path, monkeypatch, "tiny_a-infer=SIGSEGV")
    assert status == 1 and ids(doc, "benchmarks") == [A_TRAIN, B_INFER]
    assert [(e["id"], e["error"].split(";")[0]) for e in doc["errors"]] == [
        (A_INFER, "killed by SIGSEGV (a crash in native code: a failed allocation?)")
    ]
    assert len(doc["harness"]["processes"]) == 2  # nothing of tiny_a was left to run again


def test_each_case_in_its_own_child_and_an_odd_exit_status(tmp_path, monkeypatch):
    status, doc = sweep(tmp_path, monkeypatch, "tiny_b=3", mode="case")
    assert status == 1 and ids(doc, "benchmarks") == [A_TRAIN, A_INFER]
    assert [(e["id"], e["error"].split(";")[0]) for e in doc["errors"]] == [(B_INFER, "exited with status 3")]
    assert len(doc["harness"]["processes"]) == 3


def test_a_child_killed_before_its_first_case_errs_each_of_its_cases(tmp_path, monkeypatch):
    """Killed before it wrote anything: no result document at all, yet a valid file with every case's error."""
    monkeypatch.setattr(isolate, "watch", _killed_at_startup(isolate.watch))
    status, doc = sweep(tmp_path, monkeypatch, "")
    assert status == 1 and ids(doc, "errors") == [A_TRAIN, A_INFER, B_INFER] and doc["benchmarks"] == []
    assert all(
        e["error"].startswith("killed by SIGKILL") and "before its first case" in e["error"] for e in doc["errors"]
    )
    assert doc["harness"]["kind"] == "throughput" and doc["harness"]["device_class"].startswith("cpu:")
    assert len(doc["harness"]["processes"]) == 2  # no second try: it made no progress


def _killed_at_startup(watch):
    """``watch`` on a child that is SIGKILLed before it writes anything."""
    return lambda argv, env, progress, on_finish: watch(
        [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"], env, progress, on_finish
    )


def test_a_child_that_cannot_start_stops_the_sweep_with_its_status(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_CHILD", "startup=4")  # pytest's usage error: every child would end so
    p = plan(tmp_path)
    assert isolate.run(p, [], command=fake) == 4
    assert not Path(p.bench_out).exists()  # nothing ran, nothing recorded: the child said why


def test_the_merged_file_is_written_after_each_case_while_the_child_runs(tmp_path, monkeypatch):
    """Before the crash, the file already holds the case finished in the same child, marked partial."""
    monkeypatch.setenv("FAKE_CHILD", "tiny_a-infer=SIGKILL")
    p = plan(tmp_path)
    seen = []
    real_write = isolate.Sweep.write

    def write(self, *, partial):
        doc = real_write(self, partial=partial)
        seen.append((partial, ids(json.loads(Path(p.bench_out).read_text()), "benchmarks")))
        return doc

    monkeypatch.setattr(isolate.Sweep, "write", write)
    isolate.run(p, [], command=fake)
    assert seen[0] == (True, [A_TRAIN])  # written by the parent as the child finished it
    assert seen[-1] == (False, [A_TRAIN, B_INFER])


def test_ctrl_c_lets_the_child_write_its_finished_cases_and_exits_130(tmp_path, monkeypatch, capsys, ctrl_c):
    monkeypatch.setattr(isolate, "GRACE_S", 0.5)  # the child was not interrupted: it gets SIGINT after this
    monkeypatch.setenv("FAKE_CHILD", "tiny_a-infer=sleep")
    p = plan(tmp_path)
    timer = threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        status = isolate.run(p, [], command=fake)
    finally:
        timer.cancel()
    assert status == 130 and "interrupted" in capsys.readouterr().err
    doc = results.read(p.bench_out)
    assert doc["partial"] is True and ids(doc, "benchmarks") == [A_TRAIN] and doc["errors"] == []


def test_sigterm_takes_ctrl_c_s_path_and_keeps_the_finished_child(tmp_path, monkeypatch, capsys):
    """SIGTERM (a job's timeout): the running child stops as after Ctrl-C, the file keeps the finished
    cases and the processes that ran, marked partial, and the run says it was interrupted (143)."""
    monkeypatch.setattr(isolate, "GRACE_S", 0.5)
    monkeypatch.setenv("FAKE_CHILD", "tiny_b=sleep")
    p = plan(tmp_path)
    previous = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(4.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        status = isolate.run(p, [], command=fake)
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, previous)
    assert status == 128 + signal.SIGTERM and "interrupted" in capsys.readouterr().err
    doc = results.read(p.bench_out)
    assert doc["partial"] is True and ids(doc, "benchmarks") == [A_TRAIN, A_INFER]
    assert [proc["cases"] for proc in doc["harness"]["processes"]] == [[A_TRAIN, A_INFER], [B_INFER]]


def test_a_run_that_recorded_nothing_fails_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_CHILD", "startup=0")  # each child ends well having run nothing
    p = plan(tmp_path)
    assert isolate.run(p, [], command=fake) == 1
    assert "nothing was measured" in capsys.readouterr().err and not Path(p.bench_out).exists()


def test_planned_cases_that_k_left_out_fail_the_run_and_are_named(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_K", "infer")
    status, doc = sweep(tmp_path, monkeypatch, "")
    assert status == 1 and ids(doc, "benchmarks") == [A_INFER, B_INFER]
    assert f"1 of 3 planned case(s) not measured: {A_TRAIN}" in capsys.readouterr().out


def test_a_time_template_never_replaces_another_runs_result(tmp_path, monkeypatch, capsys):
    """Two runs started in one second: the second's result goes to ``<time>-2``, and so does its
    ``--plot`` figure (whose ``{time}`` and ``{device}`` are filled in as the result file's), each named
    in its line."""
    import dataclasses
    import time

    monkeypatch.setattr(time, "strftime", lambda fmt, *a: "20261207T020000")
    other, other_png = tmp_path / "20261207T020000-cpu.json", tmp_path / "20261207T020000-cpu.png"
    other.write_text('{"another": "run"}')
    other_png.write_bytes(b"another run's figure")
    p = dataclasses.replace(
        plan(tmp_path), bench_out=str(tmp_path / "{time}-{device}.json"), plot=str(tmp_path / "{time}-{device}.png")
    )
    monkeypatch.setenv("FAKE_CHILD", "")
    assert isolate.run(p, [], command=fake) == 0
    mine, mine_png = tmp_path / "20261207T020000-2-cpu.json", tmp_path / "20261207T020000-2-cpu.png"
    assert json.loads(other.read_text()) == {"another": "run"}
    assert other_png.read_bytes() == b"another run's figure" and mine_png.read_bytes().startswith(b"\x89PNG")
    assert ids(results.read(mine), "benchmarks") == [A_TRAIN, A_INFER, B_INFER]
    out = capsys.readouterr().out
    assert f"cnn-bench: wrote {mine} (2 child processes)" in out and f"cnn-bench: wrote {mine_png}" in out


def test_groups_describe_and_combine():
    cases = [Case("a", "train", 8), Case("b", "train", 8), Case("a", "infer", 8, backend="jax")]
    p = plan(Path("/tmp"), cases=cases)
    assert isolate.groups(p) == [(cases[0],), (cases[1],), (cases[2],)]
    p = plan(Path("/tmp"), cases=[*cases, Case("a", "infer", 8)])
    assert [len(g) for g in isolate.groups(p)] == [2, 1, 1]
    assert isolate.describe(-9, 3 * 2**30) == "killed by SIGKILL (out of memory?); peak RSS 3.00 GiB"
    assert isolate.describe(-6, None) == "killed by SIGABRT (aborted in native code: a failed allocation?)"
    assert isolate.describe(2, None) == "exited with status 2"
    one = {"machine_info": {}, "harness": {"backend": "tensorflow", "matmul_reference": {"fp32": [1]}, "partial": True}}
    two = {"machine_info": {}, "harness": {"backend": "tensorflow", "matmul_reference": {"fp32": [2]}}}
    merged = isolate.combine([one | {"benchmarks": [1], "errors": [1]}, two | {"benchmarks": [2]}], [{"id": "x"}])
    assert merged["benchmarks"] == [1, 2] and merged["errors"] == [1, {"id": "x"}]
    assert merged["harness"]["matmul_reference"] == {"fp32": [1, 2]} and "partial" not in merged["harness"]


def real_sweep(tmp_path, mode: str, batch_sizes: str, crash: str) -> tuple[subprocess.CompletedProcess, dict]:
    """``python -m bench throughput`` on resnet20 with two one-step rounds, ``crash`` in $CNN_BENCH_CRASH_CASE."""
    out = tmp_path / "r.json"
    args = ["--models", "resnet20", "--mode", mode, "--batch-size", batch_sizes, "--rounds", "2", "--steps", "1"]
    args += ["--warmup-rounds", "0", "--max-rounds", "2", "--bench-out", str(out)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", isolate.CRASH_ENV: crash}
    env.pop("KERAS_BACKEND", None)
    run = subprocess.run(
        [sys.executable, "-m", "bench", "throughput", *args, "--", "-q", "-p", "no:cacheprovider"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    return run, results.read(out)


@pytest.mark.slow
def test_a_real_sweep_goes_on_after_a_child_is_killed(tmp_path):
    """Three tiny TensorFlow cases; the child dies by SIGKILL as the second starts (after writing the
    first): the command ends non-zero, the first and third are measured, the second names the signal."""
    run, doc = real_sweep(tmp_path, "infer", "2,4,8", "-bs4-:SIGKILL")
    assert "partial" not in doc and doc["harness"]["options"]["isolate"] == "model"
    assert ids(doc, "benchmarks") == [
        "resnet20-infer-bs2-fp32-xla_off-synthetic-tensorflow",
        "resnet20-infer-bs8-fp32-xla_off-synthetic-tensorflow",
    ]
    assert all(b["extra_info"]["images_per_s"]["median"] > 0 for b in doc["benchmarks"])
    (error,) = doc["errors"]
    assert error["id"] == "resnet20-infer-bs4-fp32-xla_off-synthetic-tensorflow"
    assert error["error"].startswith("killed by SIGKILL (out of memory?); peak RSS")
    assert [p["status"] for p in doc["harness"]["processes"]] == [-9, 0]
    assert "killed by SIGKILL" in run.stdout  # the table names it


@pytest.mark.slow
def test_a_real_failed_allocation_is_the_case_error_and_the_sweep_goes_on(tmp_path):
    """resnet20 training at batch 4096 with 1 GiB of address space to spare: TensorFlow's allocation
    really fails (here it segfaults in the kernel; elsewhere it may raise, which the suite records as
    out of memory); either way that case has the error and batch 8 is measured after it."""
    run, doc = real_sweep(tmp_path, "train", "4096,8", "-bs4096-:RLIMIT_AS")
    (error,) = doc["errors"]
    assert error["id"] == "resnet20-train-bs4096-fp32-xla_off-synthetic-tensorflow"
    assert re.match(r"killed by SIG[A-Z]+|out of memory", error["error"]), error["error"]
    (bench,) = doc["benchmarks"]
    assert bench["extra_info"]["id"] == "resnet20-train-bs8-fp32-xla_off-synthetic-tensorflow"
    assert bench["extra_info"]["images_per_s"]["median"] > 0 and "partial" not in doc
