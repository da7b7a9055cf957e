"""The cluster of a multi-worker job (bench.cluster): where it comes from (--cluster, TF_CONFIG,
auto), every bad value as one line, and the one line that names a lost worker from what each
engine says when a peer is gone (messages as tensorflow 2.21 and jax 0.10 print them)."""

import json

import pytest

from bench import cluster
from bench.errors import UsageError

TWO = "10.0.0.1:2222,10.0.0.2:2222"


def tf_config(task=("worker", 1), **jobs):
    jobs = jobs or {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]}
    return json.dumps({"cluster": jobs, "task": {"type": task[0], "index": task[1]}})


def test_the_flags_make_a_cluster_and_write_its_tf_config():
    c = cluster.resolve(TWO, 1, timeout_s=30, environ={})
    assert c.addresses == ("10.0.0.1:2222", "10.0.0.2:2222") and c.task_index == 1 and c.count == 2
    assert not c.is_chief and c.coordinator == "10.0.0.1:2222" and c.join_timeout_s == 150
    assert json.loads(c.tf_config_json()) == {
        "cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]},
        "task": {"type": "worker", "index": 1},
    }
    assert c.record(global_batch=128) | {"source": "--cluster"} == {
        "workers": 2,
        "task_index": 1,
        "chief": 0,
        "addresses": ["10.0.0.1:2222", "10.0.0.2:2222"],
        "source": "--cluster",
        "worker_timeout_s": 30.0,
        "join_timeout_s": 150.0,
        "global_batch": 128,
        "per_worker_batch": 64,
    }


def test_tf_config_in_the_environment_works_alone_and_the_flags_win_over_it():
    text = tf_config(("worker", 1))
    c = cluster.resolve(None, None, environ={"TF_CONFIG": text})
    assert (c.source, c.task_index, c.tf_config) == ("TF_CONFIG", 1, text) and c.tf_config_json() == text
    assert cluster.resolve("127.0.0.1:1,127.0.0.1:2", 0, environ={"TF_CONFIG": text}).source == "--cluster"
    # a chief job is worker 0, the workers follow it
    c = cluster.resolve(
        None, None, environ={"TF_CONFIG": tf_config(("worker", 0), chief=["h0:1"], worker=["h1:1", "h2:1"])}
    )
    assert c.addresses == ("h0:1", "h1:1", "h2:1") and c.task_index == 1
    # one worker, or none, is a one-process run; --workers N launches its own
    assert cluster.resolve(None, None, environ={"TF_CONFIG": tf_config(("worker", 0), worker=["h:1"])}) is None
    assert cluster.resolve(None, None, environ={}) is None
    assert cluster.resolve(None, None, workers=2, environ={"TF_CONFIG": tf_config()}) is None
    auto = cluster.resolve("auto", None, environ={})
    assert auto.auto and auto.count is None and auto.joined(3, 4).count == 4 and auto.joined(3, 4).task_index == 3


@pytest.mark.parametrize(
    "flags, environ, message",
    [
        (("10.0.0.1:2222", 0), {}, "names 1 worker"),
        (("10.0.0.1,10.0.0.2:1", 0), {}, "'10.0.0.1' is not HOST:PORT"),
        (("h:1,h:99999", 0), {}, "port 99999"),
        (("h:1,h:٢٢", 0), {}, "'h:٢٢' is not HOST:PORT"),
        (("h:1,h:1", 0), {}, "names h:1 twice"),
        ((",", 0), {}, "expected HOST:PORT,HOST:PORT"),
        ((TWO, None), {}, "--task-index 0 to 1"),
        ((TWO, 2), {}, "--task-index 2 is invalid"),
        ((None, 1), {}, "--task-index 1 needs --cluster"),
        (("auto", 0), {}, "does not go with --cluster auto"),
        ((None, None), {"TF_CONFIG": "{cluster"}, "TF_CONFIG is not valid JSON"),
        ((None, None), {"TF_CONFIG": "[1]"}, "TF_CONFIG has no 'cluster'"),
        ((None, None), {"TF_CONFIG": tf_config(ps=["h:1"], worker=["h:2"])}, "job 'ps' is not supported"),
        ((None, None), {"TF_CONFIG": tf_config(worker="h:1")}, "must be a list"),
        ((None, None), {"TF_CONFIG": tf_config(("worker", 5))}, "task index 5 is invalid"),
        ((None, None), {"TF_CONFIG": tf_config(("evaluator", 0))}, "'task' must name this worker"),
        ((None, None), {"TF_CONFIG": tf_config(chief=["a:1", "b:1"])}, "2 chiefs"),
    ],
)
def test_a_bad_cluster_is_one_line(flags, environ, message):
    with pytest.raises(UsageError, match=message) as e:
        cluster.resolve(*flags, environ=environ)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), 1e9])
def test_a_bad_timeout_or_worker_count_is_one_line(value):
    with pytest.raises(UsageError, match="--worker-timeout"):
        cluster.resolve(None, None, timeout_s=value, environ={})
    with pytest.raises(UsageError, match="--workers 0"):
        cluster.resolve(None, None, workers=0, environ={})
    with pytest.raises(UsageError, match="give one of them"):
        cluster.resolve(TWO, 0, workers=2, environ={})


def test_local_clusters_are_free_loopback_ports_one_per_worker():
    clusters = cluster.local(3, timeout_s=5)
    assert [c.task_index for c in clusters] == [0, 1, 2] and len({c.addresses for c in clusters}) == 1
    assert all(a.startswith("127.0.0.1:") for a in clusters[0].addresses) and len(set(clusters[0].addresses)) == 3


W2 = cluster.Cluster(("127.0.0.1:23451", "127.0.0.1:23452"), 0, "--cluster", 20)
W3 = cluster.Cluster(("h0:1", "h1:1", "h2:1"), 2, "--cluster", 20)


class UnavailableError(Exception):
    pass


@pytest.mark.parametrize(
    "c, text, named",
    [
        # tensorflow, the peer's process killed: the collective's connection reset
        (
            W2,
            "{{function_node __wrapped__CollectiveReduceV2_Nordering_token_1_device_/job:worker/replica:0/task:0/"
            "device:CPU:0}} Collective ops is aborted by: failed to connect to all addresses; last error: UNAVAILABLE: "
            "ipv4:127.0.0.1:23452: recvmsg:Connection reset by peer\nAdditional GRPC error information from remote "
            "target /job:worker/replica:0/task:1 while calling /tensorflow.WorkerService/RecvBuf",
            [1],
        ),
        # tensorflow, the peer silent: the coordination service's heartbeat
        (
            W3,
            "Collective ops is aborted by: Error reported from /job:worker/task:0: The following tasks are unhealthy "
            "(stopped sending heartbeats):\n/job:worker/replica:0/task:1\nThe tasks have crashed.",
            [1],
        ),
        # tensorflow, worker 0 (the coordination service) silent, seen from worker 1
        (
            cluster.Cluster(W2.addresses, 1, "--cluster", 20),
            "Collective ops is aborted by: Deadline Exceeded\n\nRPC: /tensorflow.CoordinationService/Heartbeat",
            [0],
        ),
        # jax over gloo: the peer's process killed (gloo's own port, so: the only other worker)
        (
            W2,
            "UNKNOWN: Gloo all-reduce failed: [external/gloo/gloo/transport/tcp/pair.cc:538] Read error "
            "[127.0.0.1]:53934: Connection reset by peer",
            [1],
        ),
        # jax.distributed's heartbeat list
        (W3, "UNAVAILABLE: The following tasks are unhealthy (stopped sending heartbeats):\n0\nThe tasks", [0]),
        # with three workers and nothing named: "a worker"
        (W3, "Gloo all-reduce failed: Connection closed by peer [10.0.0.9]:1234", []),
    ],
)
def test_a_lost_worker_is_named_in_one_line(c, text, named):
    line = cluster.lost(UnavailableError(text), c)
    assert line is not None and "\n" not in line
    assert line.startswith(
        f"the job lost {', '.join(c.name(i) for i in named) or 'a worker'} of {c.count}: this is worker {c.task_index}"
    )


def test_other_errors_and_one_process_runs_are_not_a_lost_worker():
    assert cluster.lost(ValueError("shapes (3,) and (4,) do not match"), W2) is None
    assert cluster.lost(UnavailableError("Connection reset by peer"), None) is None


def test_cluster_auto_where_jax_finds_no_cluster_is_one_line(tmp_path):
    """``--cluster auto`` asks jax.distributed to find the cluster (TPU pod slice, Slurm, Open MPI);
    on this machine there is none: one line, exit 2, nothing written (a process of its own: jax's
    configuration is the process's)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("jax")
    out = tmp_path / "r.json"
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "TF_CONFIG")} | {"JAX_PLATFORMS": "cpu"}
    argv = ["throughput", "--backend", "jax", "--cluster", "auto", "--bench-out", str(out)]
    run = subprocess.run(
        [sys.executable, "-m", "bench", *argv],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert len(errors) == 1 and errors[0].startswith("error: --cluster auto: jax.distributed found no cluster here")
    assert not out.exists()
