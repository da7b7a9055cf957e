"""Each model's cases (or each case) in a child process of its own, so that a crash costs one case.

A real out-of-memory does not always raise: the kernel's OOM killer sends SIGKILL, and a failed
allocation inside a kernel aborts (std::bad_alloc) or segfaults. Either ends the process with
every case still to come. So ``python -m bench throughput`` runs the plan's cases in child
processes, one after another (``--isolate model``, the default: one per model and backend;
``case``: one per case; ``none``: none, the sweep runs in the command's own process), and only
watches them:

- a child runs the suite on its cases (``-k`` and the other pytest arguments still apply) and
  writes its own result file after every case, and a progress file: the cases pytest selected,
  then a line as each one starts and as it ends;
- when a child dies by a signal or ends with a status pytest does not end with, the case it had
  started gets an ``errors`` entry naming the signal and the child's peak RSS ("killed by SIGKILL
  (out of memory?); peak RSS 3.10 GiB"), and its cases not yet reached run in a fresh child;
- after every finished case the merged result file (``--bench-out``) is rewritten atomically,
  marked partial until the sweep ends, so a crash of this process loses no finished case either;
- Ctrl-C gives the running child time to write its finished cases, writes the file marked partial
  and exits 130.

pytest-benchmark's own outputs are each child's: ``--benchmark-autosave`` saves one file per child
and ``--benchmark-json`` holds the last child's cases (``--isolate none`` for one of everything).
A child costs about 6 s of CPU to start on the 2-core machine here (Python, TensorFlow, pytest).

A child is ``python -m bench.throughput.isolate SPEC.json`` (``main``): its part of the plan, the
pytest arguments and its progress file. For tests only, ``CNN_BENCH_CRASH_CASE=<case id
substring>:<how>`` makes a child die as such a case starts: ``how`` is a signal name (``SIGKILL``,
as the OOM killer sends), an exit status, or ``RLIMIT_AS``: a real allocation failure, the
process's address space limited to 1 GiB beyond what it has mapped (TensorFlow on the CPU then
segfaults in a kernel, or raises an out-of-memory error the suite records).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import processes
from bench.io import read_json, write_json
from bench.throughput.plan import NOTHING_MEASURED, SUITE_DIR, ThroughputPlan, out_file, plot_file
from bench.throughput.plugin import ThroughputPlugin
from bench.throughput.workload import Case

CRASH_ENV = "CNN_BENCH_CRASH_CASE"  # tests only: "<case id substring>:<SIGNAL or exit status>"
POLL_S = 0.2  # how often the running child's progress is read
GRACE_S = 10.0  # after Ctrl-C: the child's time to write its finished cases, then SIGINT, then SIGKILL
NO_TESTS = 5  # pytest's status when -k selected none of a child's cases
INTERRUPTED = 130
# pytest ends with 0 (passed), 1 (a case failed, e.g. a recorded out-of-memory) or NO_TESTS; 2 is a usage error here
PYTEST_ENDINGS = (0, 1, NO_TESTS)
HINTS = {
    "SIGKILL": " (out of memory?)",
    "SIGABRT": " (aborted in native code: a failed allocation?)",
    "SIGSEGV": " (a crash in native code: a failed allocation?)",
    "SIGBUS": " (a crash in native code)",
}


def groups(plan: ThroughputPlan) -> list[tuple[Case, ...]]:
    """The plan's cases as its children run them, in plan order: one child per model and backend
    (``--isolate model``) or per case (``case``)."""
    if plan.isolate == "case":
        return [(c,) for c in plan.cases]
    by_model: dict[tuple[str, str], list[Case]] = {}
    for c in plan.cases:
        by_model.setdefault((c.backend, c.model), []).append(c)
    return [tuple(cases) for cases in by_model.values()]


def describe(status: int, peak_rss_bytes: int | None) -> str:
    """How a child ended, in words: ``killed by SIGKILL (out of memory?); peak RSS 3.10 GiB``."""
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        text = f"killed by {name}{HINTS.get(name, '')}"
    else:
        text = f"exited with status {status}"
    return text + (f"; peak RSS {peak_rss_bytes / 2**30:.2f} GiB" if peak_rss_bytes else "")


# --- the parent: children one after another, their results merged ----------------------------


@dataclasses.dataclass
class Outcome:
    """How one child ended, and what its progress file says it did."""

    status: int  # its exit status; -N: killed by signal N
    peak_rss_bytes: int | None
    wall_s: float
    progress: Progress
    interrupted: bool = False  # Ctrl-C (or SIGTERM) here while it ran
    terminated: bool = False  # SIGTERM here while it ran: the sweep ends with 143

    @property
    def crashed(self) -> bool:
        """Ended other than pytest ends (a signal, an abort, ``os._exit``, a usage error)."""
        return self.status not in PYTEST_ENDINGS


class Progress:
    """A child's progress file, read as it grows: one JSON object a line, the last maybe half-written."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.device_class: str | None = None
        self.selected: list[str] | None = None  # None: the child never finished collecting
        self.started: dict[str, str] = {}  # case id -> pytest node id
        self.finished: list[str] = []
        self.usage_error: str | None = None  # the child's one-line usage error (a device that is not there)

    def update(self) -> bool:
        """Read what was added; True when a case finished since the last call."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return False
        *lines, rest = data.split(b"\n")
        self.offset += len(data) - len(rest)
        before = len(self.finished)
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            self.device_class = record.get("device_class", self.device_class)
            if "selected" in record:
                self.selected = list(record["selected"])
            if "start" in record:
                self.started[record["start"]] = record.get("nodeid")
            if "finish" in record:
                self.finished.append(record["finish"])
            self.usage_error = record.get("usage_error", self.usage_error)
        return len(self.finished) > before


def child_command(spec: Path) -> list[str]:
    return [sys.executable, "-m", "bench.throughput.isolate", str(spec)]


def watch(argv: list[str], env: dict, progress: Progress, on_finish: Callable[[], None]) -> Outcome:
    """Run one child to its end, calling ``on_finish`` after each case it finishes. Ctrl-C here
    stops it (``stop``) and returns its outcome marked interrupted. The child's stderr is kept in a
    file and passed on when it ends; a usage error it reports is printed alone, as one line. A
    SIGTERM or SIGKILL of this process ends the child too (``bench.processes``)."""
    t0 = time.monotonic()
    err_path = progress.path.with_suffix(".stderr")
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(argv, env=env, stderr=err, **processes.child_options())
    interrupted = terminated = False
    try:
        with processes.sigterm_exits():
            while (ended := _reap(proc)) is None:
                if progress.update():
                    on_finish()
                time.sleep(POLL_S)
    except KeyboardInterrupt:
        interrupted = True
        ended = stop(proc)
    except SystemExit:  # SIGTERM here (bench.processes): the child ends as after Ctrl-C, keeping its cases
        interrupted = terminated = True
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        ended = stop(proc)
    finally:
        if proc.returncode is None:  # an error here: never leave a child running
            proc.kill()
            _reap(proc, block=True)
    progress.update()
    if progress.usage_error is not None:
        print(f"error: {progress.usage_error}", file=sys.stderr, flush=True)
    else:
        sys.stderr.write(err_path.read_text(errors="replace"))
        sys.stderr.flush()
    return Outcome(*ended, time.monotonic() - t0, progress, interrupted, terminated)


def stop(proc: subprocess.Popen) -> tuple[int, int | None]:
    """After Ctrl-C: the child (interrupted by the terminal too) gets ``GRACE_S`` to write its
    finished cases and end; then SIGINT, then SIGKILL. A second Ctrl-C moves on to the next."""
    for sig in (None, signal.SIGINT, signal.SIGKILL):
        if sig is not None:
            proc.send_signal(sig)
        deadline = time.monotonic() + GRACE_S
        try:
            while time.monotonic() < deadline:
                if (ended := _reap(proc)) is not None:
                    return ended
                time.sleep(0.1)
        except KeyboardInterrupt:
            continue
    return _reap(proc, block=True)


def _reap(proc: subprocess.Popen, *, block: bool = False) -> tuple[int, int | None] | None:
    """The child's exit status and peak RSS (``os.wait4``'s rusage) once it has ended, else None."""
    pid, status, usage = os.wait4(proc.pid, 0 if block else os.WNOHANG)
    if pid == 0:
        return None
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    return proc.returncode, usage.ru_maxrss * 1024 or None  # kilobytes on Linux


class Sweep:
    """The sweep so far: each child's result document, the crashes recorded here, the processes;
    ``document()`` merges them into one result, ``write()`` writes it to ``path``."""

    def __init__(self, plan: ThroughputPlan, pytest_args: list[str], tmp: Path, command=child_command):
        self.plan = plan
        self.pytest_args = list(pytest_args)
        self.tmp = tmp
        self.command = command
        self.file = out_file(plan.bench_out, plan.device)  # every write of the merged result goes here
        self.docs: list[dict] = []  # result documents of the children, the running one's last
        self.crashes: list[dict] = []  # ``errors`` entries of the cases whose process died
        self.processes: list[dict] = []  # what each child ran and how it ended
        self.device_class: str | None = None
        self.stubs: dict[str, dict] = {}  # backend -> ``_stub``, made once

    def run(self) -> int:
        """Every group's cases, a fresh child for those a crashed child did not reach. Returns 1
        when a case crashed or failed, else 0 (5 when -k selected no case), or the status of a
        child that could not start (a usage error, a bad pytest argument): the next would fail
        alike. Ctrl-C raises KeyboardInterrupt, SIGTERM SystemExit(143), once the running child has ended."""
        statuses = []
        for group in groups(self.plan):
            todo = list(group)
            while todo:
                outcome = self.child(todo)
                if outcome.terminated:
                    raise SystemExit(128 + signal.SIGTERM)
                if outcome.interrupted or outcome.status in (INTERRUPTED, -signal.SIGINT):
                    raise KeyboardInterrupt
                todo, status = self.settle(todo, outcome)
                if status not in PYTEST_ENDINGS:
                    return status
                statuses.append(status)
        ran = [s for s in statuses if s != NO_TESTS]
        if not statuses and self.plan.shard is not None:
            return 0  # an empty shard (more shards than cases): its result says it had none
        return max(ran) if ran else NO_TESTS

    def child(self, cases: list[Case]) -> Outcome:
        """Run ``cases`` (one backend's) in a child process; its result document joins ``docs``."""
        n = len(self.processes)
        spec, out = self.tmp / f"child{n}.json", self.tmp / f"child{n}-result.json"
        progress = Progress(self.tmp / f"child{n}-progress.jsonl")
        backend = cases[0].backend
        part = dataclasses.replace(
            self.plan,
            backends=(backend,),
            cases=tuple(cases),
            bench_out=str(out),
            plot=None,
            isolate="none",
            shard=None,
        )  # the shard is this process's to record
        write_json(spec, {"plan": dataclasses.asdict(part), "pytest_args": self.pytest_args, "progress": progress.path})
        models = sorted({c.model for c in cases})
        n_cases = f"{len(cases)} case{'s' if len(cases) > 1 else ''}"
        print(f"cnn-bench: {', '.join(models)} on {backend}, {n_cases} in a child process", flush=True)
        self.docs.append({})

        def finished():  # a case ended: the child's result so far joins the merged file
            if out.exists():
                self.docs[-1] = read_json(out, what="result file")
                self.write(partial=True)

        outcome = watch(self.command(spec), {**os.environ, "KERAS_BACKEND": backend}, progress, finished)
        self.docs[-1] = read_json(out, what="result file") if out.exists() else {}
        self.device_class = self.device_class or progress.device_class
        self.processes.append(
            {
                "backend": backend,
                "cases": [c.id for c in cases],
                "status": outcome.status,
                "ended": describe(outcome.status, None),
                "peak_rss_bytes": outcome.peak_rss_bytes,
                "wall_s": round(outcome.wall_s, 3),
            }
        )
        return outcome

    def settle(self, todo: list[Case], outcome: Outcome) -> tuple[list[Case], int]:
        """After a child: an error for the case it died in, and the cases left for a fresh child.
        Returns (cases left, status): the child's own when pytest ended it, 1 when it crashed."""
        progress = outcome.progress
        selected = [c for c in todo if progress.selected is None or c.id in progress.selected]
        started = [c for c in selected if c.id in progress.started]
        if not outcome.crashed:
            return [], outcome.status
        if not started and outcome.status > 0:
            return [], outcome.status  # it could not start: the next child would not either
        died_in = [c for c in started if c.id not in progress.finished] if started else selected
        how = describe(outcome.status, outcome.peak_rss_bytes)
        for case in died_in:
            message = how if started else f"{how}, before its first case"
            print(f"cnn-bench: {case.id}: {message}; the sweep goes on", file=sys.stderr, flush=True)
            self.crashes.append(self.crash_error(case, message, outcome, progress.started.get(case.id)))
        self.write(partial=True)
        return [c for c in selected if c not in started and c not in died_in], 1

    def crash_error(self, case: Case, message: str, outcome: Outcome, nodeid: str | None) -> dict:
        """The ``errors`` entry of a case whose process died, in the shape the suite records errors."""
        name = f"test_throughput[{case.id}]"
        return {
            "id": case.id,
            "case": case.to_dict(),
            "device": self.plan.device,
            "device_class": outcome.progress.device_class or self._device_class(),
            "error": message,
            "name": name,
            "fullname": nodeid or name,
            "exit_status": outcome.status,
            "peak_rss_bytes": outcome.peak_rss_bytes,
        }

    def _device_class(self) -> str | None:
        if self.device_class is None and self.plan.device == "cpu":
            from bench.devices import cpu_class

            self.device_class = cpu_class()
        return self.device_class

    def document(self, *, partial: bool) -> dict | None:
        """The merged result: one backend's documents joined (``combine``), several backends'
        merged as ``fanout.merge`` does; None when there is nothing yet."""
        from bench.throughput import fanout

        each = []
        for backend in self.plan.backends:
            docs = [d for d in self.docs if d and d["harness"].get("backend") == backend]
            crashes = [e for e in self.crashes if e["case"]["backend"] == backend]
            if docs or crashes:
                each.append(combine(docs or [self._stub(backend)], crashes))
        if not each and self.plan.shard is not None and not self.plan.cases:
            each = [combine([self._stub(self.plan.backends[0])])]  # an empty shard: merge needs its file
        if not each:
            return None
        doc = each[0] if len(each) == 1 else fanout.merge(each, self.plan)
        doc["harness"] |= {"options": self.plan.to_dict(), "processes": list(self.processes)}
        if self.plan.shard is not None:
            doc["harness"]["shard"] = self.plan.shard.record()
        if partial:
            doc["partial"] = doc["harness"]["partial"] = True
        return doc

    @property
    def path(self) -> Path | None:
        """The merged result file (the one written, once written), or None for ``--bench-out ''``."""
        return None if self.file is None else self.file.path

    def write(self, *, partial: bool) -> dict | None:
        doc = self.document(partial=partial)
        if doc is not None and self.file is not None:
            self.file.write_json(doc)
        return doc

    def _stub(self, backend: str) -> dict:
        """A result document for a backend none of whose cases finished: what is known here."""
        if backend not in self.stubs:
            self.stubs[backend] = self._make_stub(backend)
        return self.stubs[backend]

    def _make_stub(self, backend: str) -> dict:
        import pytest_benchmark

        from bench.environment import commit_info, cpu_model, usable_cpus
        from bench.results import THROUGHPUT_SCHEMA

        return {
            "machine_info": {
                "node": platform.node(),
                "python_version": platform.python_version(),
                "cpu": {"brand_raw": cpu_model(), "count": usable_cpus()},
                "backend": backend,
            },
            "commit_info": commit_info(),
            "benchmarks": [],
            "errors": [],
            "datetime": datetime.datetime.now(datetime.UTC).isoformat(),
            "version": pytest_benchmark.__version__,
            "harness": {
                "kind": "throughput",
                "schema": THROUGHPUT_SCHEMA,
                "backend": backend,
                "device": self.plan.device,
                "device_class": self._device_class(),
            },
        }


def combine(docs: list[dict], crashes: list[dict] = ()) -> dict:
    """One backend's result documents (one per child) as one: the first's environment, every
    benchmark, error and matmul reference in order, then the ``crashes`` recorded by the parent."""
    first = docs[0]
    out = {k: v for k, v in first.items() if k not in ("benchmarks", "errors", "partial")}
    out["machine_info"] = {**first["machine_info"], "argv": sys.argv}
    harness = {k: v for k, v in first["harness"].items() if k != "partial"}
    references: dict[str, list] = {}
    for d in docs:
        for precision, measured in (d["harness"].get("matmul_reference") or {}).items():
            references.setdefault(precision, []).extend(measured)
    if references:
        harness["matmul_reference"] = references
    if "loadavg_end" in docs[-1]["harness"]:
        harness["loadavg_end"] = docs[-1]["harness"]["loadavg_end"]
    out["harness"] = harness
    out["benchmarks"] = [b for d in docs for b in d.get("benchmarks", [])]
    out["errors"] = [e for d in docs for e in d.get("errors", [])] + list(crashes)
    return out


def run(plan: ThroughputPlan, pytest_args: list[str], *, command=child_command) -> int:
    """Run ``plan``'s cases in child processes (``Sweep.run``), write the merged result and print
    its table; 130 after Ctrl-C (143 after SIGTERM), with the finished cases in the file marked
    partial. A run that recorded nothing, or left planned cases unmeasured (``-k``), is not a
    success: 1 (5 when ``-k`` selected no case at all), with a line saying so."""
    from bench.throughput import summary

    with tempfile.TemporaryDirectory(prefix="cnn-bench-isolate-") as tmp:
        sweep = Sweep(plan, pytest_args, Path(tmp), command)
        try:
            with processes.sigterm_exits():  # SIGTERM: the orderly path Ctrl-C takes, then 143
                status = sweep.run()
        except KeyboardInterrupt:
            status = INTERRUPTED
        except SystemExit as e:  # SIGTERM (bench.processes), once the running child has stopped
            status = e.code if isinstance(e.code, int) else 128 + signal.SIGTERM
        doc = sweep.write(partial=status not in PYTEST_ENDINGS)  # interrupted or stopped: not every case ran
    stopped = status in (INTERRUPTED, 128 + signal.SIGTERM)
    if doc is None:
        if stopped:
            print("interrupted: no case had finished; no result file was written", file=sys.stderr)
        elif status in (0, NO_TESTS):
            print(f"cnn-bench: {NOTHING_MEASURED}; no result file was written", file=sys.stderr)
        return 1 if status == 0 else status
    print()
    print(summary.table(doc, summary.load_baselines()))
    if sweep.path is not None:
        print(f"cnn-bench: wrote {sweep.path} ({len(sweep.processes)} child processes)")
    if plan.plot and not stopped:
        print(summary.plot_line(doc, plot_file(plan, sweep.file)))
    if stopped:
        print("interrupted: the result file holds the finished cases, marked partial", file=sys.stderr)
    return 1 if status == 0 and summary.unmeasured(doc) else status


# --- the child ----------------------------------------------------------------------------------


class ChildPlugin(ThroughputPlugin):
    """The suite's plugin in a child: its result file as usual, and the progress file the parent
    reads; no table (the parent prints the merged one)."""

    def __init__(self, plan: ThroughputPlan, session, progress: Path):
        super().__init__(plan, session)
        self.progress = progress
        self.ids: dict[str, str] = {}  # pytest node id -> case id
        self.crash = os.environ.get(CRASH_ENV, "").rpartition(":")
        self._note(device_class=session.device_class)

    def _note(self, **record) -> None:
        with open(self.progress, "a") as f:  # one write per line: a killed child leaves whole lines
            f.write(json.dumps(record) + "\n")

    def pytest_collection_finish(self, session):
        self.ids = {
            item.nodeid: Case(**item.callspec.params["case"]).id
            for item in session.items
            if "case" in getattr(getattr(item, "callspec", None), "params", {})
        }
        self._note(selected=list(self.ids.values()))

    def pytest_runtest_logstart(self, nodeid, location):
        case_id = self.ids.get(nodeid, nodeid)
        self._note(start=case_id, nodeid=nodeid)
        substring, _, how = self.crash
        if substring and substring in case_id:
            _crash(how)

    def pytest_runtest_logfinish(self, nodeid, location):
        super().pytest_runtest_logfinish(nodeid, location)  # the result file first, then the note
        self._note(finish=self.ids.get(nodeid, nodeid))

    def pytest_terminal_summary(self, terminalreporter, config):
        pass


def _crash(how: str) -> None:
    """Tests only (``CRASH_ENV``): die by signal ``how``, exit with status ``how``, or (``RLIMIT_AS``)
    leave 1 GiB of address space, so that the case's allocations really fail."""
    if how == "RLIMIT_AS":
        import resource

        mapped = int(Path("/proc/self/status").read_text().split("VmSize:")[1].split()[0]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (mapped + 2**30, resource.getrlimit(resource.RLIMIT_AS)[1]))
    elif how.isdigit():
        os._exit(int(how))
    else:
        os.kill(os.getpid(), signal.Signals[how])


def plan_from_dict(d: dict) -> ThroughputPlan:
    """A plan from ``dataclasses.asdict(plan)`` read back from JSON."""
    return ThroughputPlan(**{**d, "backends": tuple(d["backends"]), "cases": tuple(Case(**c) for c in d["cases"])})


def main(argv: list[str] | None = None) -> int:
    """A child: the part of the plan in SPEC.json, through the suite in this process."""
    import pytest

    from bench.errors import UsageError
    from bench.throughput.plugin import open_session

    spec = json.loads(Path((sys.argv[1:] if argv is None else argv)[0]).read_text())
    plan = plan_from_dict(spec["plan"])
    try:
        session = open_session(plan)  # the plan's one backend, before Keras is imported
    except UsageError as e:  # the parent prints it, without this process's framework log lines
        with open(spec["progress"], "a") as f:
            f.write(json.dumps({"usage_error": str(e)}) + "\n")
        return 2
    plugin = ChildPlugin(plan, session, Path(spec["progress"]))
    status = pytest.main([str(SUITE_DIR), *spec["pytest_args"]], plugins=[plugin])
    return INTERRUPTED if status == pytest.ExitCode.INTERRUPTED else int(status)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
