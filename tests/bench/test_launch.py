"""--workers N (bench.launch): N worker processes, watched; the first that fails is named in one line
and the others are stopped within the timeout. The workers here are small Python programs, no engine."""

import sys

from bench import cluster, launch

EXIT = cluster.EXIT_LOST


def program(code_by_worker: dict[int, str], default: str = "pass"):
    """argv_for: worker i runs ``code_by_worker[i]`` (Python), with ``i`` and its cluster given."""

    def argv_for(c: cluster.Cluster) -> list[str]:
        body = code_by_worker.get(c.task_index, default)
        return [sys.executable, "-c", f"import os, sys, time\ni = {c.task_index}\n{body}"]

    return argv_for


def test_workers_that_all_succeed_are_status_0():
    lines = []
    outcome = launch.run(program({}), 3, timeout_s=5, log=lines.append)
    assert outcome.statuses == [0, 0, 0] and outcome.status == 0 and outcome.failure is None
    assert "3 workers on this machine" in lines[0] and len(lines) == 1


def test_a_worker_that_dies_is_named_and_the_others_are_stopped_within_the_timeout():
    lines = []
    outcome = launch.run(
        program({1: "print('training'); sys.stdout.flush(); time.sleep(0.5); os._exit(7)"}, default="time.sleep(60)"),
        3,
        timeout_s=1,
        log=lines.append,
    )
    assert outcome.statuses[1] == 7 and outcome.statuses[0] < 0 and outcome.statuses[2] < 0  # killed
    assert outcome.seconds < 10 and outcome.status == 1
    assert lines[-1].startswith("error: worker 1 (127.0.0.1:") and "exited with status 7" in lines[-1]
    assert "killed worker(s) 0, 2 after 1 s" in lines[-1] and "its last line: 'training'" in lines[-1]


def test_the_worker_that_died_is_named_not_the_one_that_saw_it_die():
    outcome = launch.run(
        program({0: f"time.sleep(1); sys.exit({EXIT})", 1: "time.sleep(0.8); os.kill(os.getpid(), 9)"}),
        2,
        timeout_s=5,
        log=lambda _m: None,
    )
    assert outcome.failure.startswith("worker 1 (") and "was killed by SIGKILL" in outcome.failure


def test_workers_that_all_refuse_their_options_are_a_usage_error():
    outcome = launch.run(program({}, default="sys.exit(2)"), 2, timeout_s=5, log=lambda _m: None)
    assert outcome.status == 2 and outcome.failure is None
