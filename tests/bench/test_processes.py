"""Children never outlive the command that started them: SIGTERM becomes an orderly exit that kills
them, and on Linux a SIGKILL of the parent kills them too. Checked on the harness's own starters
(``throughput``'s isolated cases, ``--workers N``'s workers) with children that would sleep for ever."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import processes
from tests.bench.children import assert_children_die_with

ROOT = Path(__file__).resolve().parents[2]

# a child that writes its pid (atomically) and sleeps
CHILD = """
import os, sys, time
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(600)
"""

# a parent that starts CHILD through one of the harness's starters
PARENTS = {
    "throughput's isolated cases": """
import os, sys
from pathlib import Path
from bench.throughput import isolate
child = [sys.executable, "-c", sys.argv[2], sys.argv[1] + ".0"]
outcome = isolate.watch(child, dict(os.environ), isolate.Progress(Path(sys.argv[1] + ".progress")), lambda: None)
sys.exit(143 if outcome.terminated else outcome.status)  # as Sweep.run does: the child stopped, then 143
""",
    "--workers N": """
import sys
from bench import launch
launch.run(lambda c: [sys.executable, "-c", sys.argv[2], f"{sys.argv[1]}.{c.task_index}"], 2, timeout_s=600, log=lambda m: None)
""",
}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="dying with the parent uses Linux's prctl")
@pytest.mark.parametrize("starter", list(PARENTS))
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_killed_parent_leaves_no_child_running(tmp_path, starter, how):
    pid_file = tmp_path / "child.pid"
    n = 2 if starter == "--workers N" else 1
    pids = [Path(f"{pid_file}.{i}") for i in range(n)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen([sys.executable, "-c", PARENTS[starter], str(pid_file), CHILD], env=env)
    assert_children_die_with(parent, pids, how)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="child_options is empty off Linux")
def test_a_child_takes_the_sigint_its_parent_sends_though_the_parent_ignores_sigint():
    """A harness started with ``nohup`` or ``cmd &`` ignores SIGINT, and children inherit that; the
    SIGINT it sends a child (stop and write what you finished) must still raise KeyboardInterrupt there."""
    probe = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        inherited = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
        ours = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True, **processes.child_options()
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    assert inherited.stdout.strip() == "False"  # what a plain child gets: the case this guards against
    assert ours.stdout.strip() == "True"


def test_sigterm_exits_only_inside_the_block():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as e, processes.sigterm_exits():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler runs at once; reaching the end of this sleep is a failure
    assert e.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before


# SIGTERM handled inside a gc callback (as jax's ``_xla_gc_callback``), where Python discards exceptions
SWALLOWED = """
import gc, signal, sys, time
from bench import processes
processes.exit_on_sigterm()
fired = []
def callback(phase, info):
    if phase == "start" and not fired:
        fired.append(1)
        signal.raise_signal(signal.SIGTERM)
        sum(range(10000))  # the handler runs here, inside the callback
gc.callbacks.append(callback)
gc.collect()
try:
    time.sleep(30)
finally:
    print("cleanup ran", flush=True)
print("survived", flush=True)
"""


def test_a_sigterm_whose_exit_lands_in_a_gc_callback_still_exits_in_order():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", SWALLOWED], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 128 + signal.SIGTERM and time.perf_counter() - t0 < 20
    assert done.stdout == "cleanup ran\n" and "Exception ignored" not in done.stderr
