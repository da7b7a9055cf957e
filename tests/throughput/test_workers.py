"""Throughput across workers (bench.throughput.workers): what a job's plan refuses, the scaling of a
job against one worker, and, slow, ``--workers 2`` end to end on loopback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.errors import UsageError
from bench.throughput import fanout, workers
from bench.throughput.plan import OPTIONS, dest, resolve

ROOT = Path(__file__).resolve().parents[2]
TWO = "127.0.0.1:2222,127.0.0.1:2223"


def opts(**over):
    base = {dest(flag): kwargs.get("default") for flag, kwargs in OPTIONS.items()}
    return base | {"models": "resnet20", "mode": "train", "bench_out": ""} | over


def test_a_plan_knows_its_job():
    plan = resolve(opts(workers=2, batch_size="32"))
    assert plan.workers == 2 and plan.cluster is None and [c.batch_size for c in plan.cases] == [32]
    plan = resolve(opts(cluster=TWO, task_index=1, worker_timeout=5.0))
    assert plan.cluster.task_index == 1 and plan.cluster.count == 2 and plan.cluster.timeout_s == 5.0
    assert plan.to_dict()["cluster"]["addresses"] == TWO.split(",") and plan.to_dict()["cluster"]["task_index"] == 1
    assert resolve(opts()).cluster is None


@pytest.mark.parametrize(
    "over, message",
    [
        (dict(workers=2, backend="tensorflow,jax"), "--workers 2 times one --backend at a time"),
        (dict(workers=2, backend="torch"), "not torch"),
        (dict(cluster=TWO, task_index=0, device="tpu"), "TPU pod slice"),
        (dict(workers=2, cpu_replicas=2, batch_size="8"), "--cpu-replicas with --workers 2"),
        (dict(workers=2, data="real"), "--data real with --workers 2"),
        (dict(workers=3, batch_size="32"), "--batch-size 32 is invalid with 3 workers"),
        (dict(cluster=TWO, task_index=0, batch_size="7"), "--batch-size 7 is invalid with 2 workers"),
        (dict(workers=0), "--workers 0 is invalid"),
        (dict(workers=2, cluster=TWO, task_index=0), "give one of them"),
        (dict(task_index=1), "--task-index 1 needs --cluster"),
        (dict(worker_timeout=0.0), "--worker-timeout 0.0 is invalid"),
    ],
)
def test_what_a_job_cannot_do_is_one_line(over, message):
    with pytest.raises(UsageError, match=message) as e:
        resolve(opts(**over))
    assert "\n" not in str(e.value)


def test_a_worker_gets_the_plan_and_its_place_in_the_job(tmp_path):
    argv = fanout.child_argv(opts(workers=1, rounds=3), "tensorflow", "", ["-q"])
    assert argv[argv.index("--bench-out") + 1] == "" and "--workers" not in argv and argv[-2:] == ["--", "-q"]


def _doc(rates: dict[int, float]) -> dict:
    case = {"model": "resnet20", "mode": "train", "precision": "fp32", "compile": "off", "backend": "tensorflow"}
    return {
        "harness": {"kind": "throughput", "backend": "tensorflow"},
        "benchmarks": [
            {"extra_info": {"case": case | {"batch_size": bs}, "images_per_s": {"median": rate}}}
            for bs, rate in rates.items()
        ],
    }


def test_scaling_is_the_job_against_workers_times_one_worker_at_the_per_worker_batch():
    doc = workers.scaling(_doc({64: 300.0, 128: 480.0}), _doc({32: 200.0, 64: 250.0}), 2)
    first, second = (b["extra_info"]["workers"] for b in doc["benchmarks"])
    assert first["one_worker_batch"] == 32 and first["one_worker_images_per_s"] == 200.0
    assert first["images_per_s_per_worker"] == 150.0 and first["scaling_efficiency"] == pytest.approx(0.75)
    assert second["scaling_efficiency"] == pytest.approx(480.0 / (2 * 250.0))
    assert doc["harness"]["workers"] == 2 and doc["harness"]["one_worker"]["benchmarks"]
    lonely = workers.scaling(_doc({64: 300.0}), None, 2)["benchmarks"][0]["extra_info"]["workers"]
    assert lonely["one_worker_images_per_s"] is None and lonely["scaling_efficiency"] is None
    text = workers.table(doc)
    assert "efficiency" in text.splitlines()[0] and text.splitlines()[2].split()[-1] == "0.75"


@pytest.mark.slow
def test_two_workers_on_loopback_against_one(tmp_path):
    """The real thing on tensorflow: one worker alone, then a job of two; one result file, the job's."""
    out = tmp_path / "results" / "job.json"
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "TF_CONFIG")}
    args = ["--workers", "2", "--models", "resnet20", "--mode", "train", "--batch-size", "16", "--rounds", "2"]
    args += ["--steps", "1", "--warmup-rounds", "0", "--max-rounds", "2", "--worker-timeout", "60"]
    run = subprocess.run(
        [sys.executable, "-m", "bench", "throughput", *args, "--bench-out", str(out)],
        cwd=ROOT,
        env=env | {"TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert [p.name for p in out.parent.iterdir()] == ["job.json"]
    doc = json.loads(out.read_text())
    (bench,) = doc["benchmarks"]
    w = bench["extra_info"]["workers"]
    assert bench["extra_info"]["case"]["batch_size"] == 16 and w["workers"] == 2 and w["one_worker_batch"] == 8
    assert w["images_per_s"] > 0 and w["one_worker_images_per_s"] > 0 and w["scaling_efficiency"] > 0
    assert doc["harness"]["strategy"] == "MultiWorkerMirroredStrategy" and doc["harness"]["cluster"]["workers"] == 2
    assert doc["harness"]["one_worker"]["benchmarks"][0]["extra_info"]["case"]["batch_size"] == 8
    assert "efficiency" in run.stdout


def test_a_sharded_job_measures_the_shards_cases_and_records_the_shard(monkeypatch, tmp_path):
    """``--workers 2 --shard 1/2``: the worker alone (at the per-worker batch) and the job's workers are
    told the shard's cases, as a backend's process is (``fanout.CASES_ENV``), and the result carries
    ``harness.shard`` for ``python -m bench merge``. The processes are stand-ins that write a result."""
    import dataclasses
    import types

    from bench import launch
    from bench.cluster import Cluster
    from tests.throughput import documents

    out = tmp_path / "job.json"
    plan = resolve(opts(workers=2, mode="train,infer", batch_size="32", shard="1/2", bench_out=str(out)))
    (mine,) = plan.cases  # two cases in two shards: one each
    alone = dataclasses.replace(mine, batch_size=16)
    told = {}

    def measured(who, argv, env, case):
        assert "--shard" not in argv  # the cases are told, not the shard: one worker's plan is another plan
        told[who] = json.loads(env[fanout.CASES_ENV])
        path = argv[argv.index("--bench-out") + 1]
        doc = documents.doc([documents.bench(case.to_dict(), 100.0)])
        Path(path).write_text(json.dumps(doc | {"machine_info": {"backend": "tensorflow"}}))

    def one_worker(argv, env, **_):
        measured("one worker", argv, env, alone)
        return types.SimpleNamespace(returncode=0)

    def job(argv_for, n, *, env, **_):
        chief = Cluster(addresses=("127.0.0.1:1", "127.0.0.1:2"), task_index=0, source="--workers 2")
        measured("job", argv_for(chief), env, mine)
        return types.SimpleNamespace(status=0)

    monkeypatch.setattr(workers.subprocess, "run", one_worker)
    monkeypatch.setattr(launch, "run", job)
    assert workers.run(plan, opts(workers=2, worker_timeout=60.0), []) == 0
    assert told == {"one worker": [alone.id], "job": [mine.id]}
    doc = json.loads(out.read_text())
    assert doc["harness"]["shard"] == plan.shard.record() and doc["harness"]["options"]["cases"] == [mine.id]
    assert doc["benchmarks"][0]["extra_info"]["workers"]["scaling_efficiency"] == pytest.approx(0.5)
