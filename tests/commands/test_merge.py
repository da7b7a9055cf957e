"""``python -m bench throughput --shard i/N`` on two runners and ``python -m bench merge`` end to end:
two real, tiny shards through the command line, merged, and read back as one run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# resnet20 at batch 8, two one-step rounds, train and infer: two cases, one a shard
TINY = "--models resnet20 --mode train,infer --batch-size 8 --rounds 2 --warmup-rounds 0 --max-rounds 2 --steps 1"


def bench(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("KERAS_BACKEND", None)
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_two_shards_through_the_command_line_merge_into_one_run(tmp_path):
    from bench.__main__ import main
    from bench.regression.throughput import load_result

    paths = []
    for i in (1, 2):
        out = tmp_path / f"shard-{i}.json"
        run = bench("throughput", *TINY.split(), "--shard", f"{i}/2", "--bench-out", str(out), "--", "-q")
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        assert f"cnn-bench: shard {i}/2 of plan" in run.stdout and "1 of 2 cases" in run.stdout
        paths.append(str(out))
    shards = [json.loads(Path(p).read_text()) for p in paths]
    ids = [[b["extra_info"]["id"] for b in d["benchmarks"]] for d in shards]
    assert ids == [
        ["resnet20-train-bs8-fp32-xla_off-synthetic-tensorflow"],
        ["resnet20-infer-bs8-fp32-xla_off-synthetic-tensorflow"],
    ]
    assert shards[0]["harness"]["shard"]["plan"] == shards[1]["harness"]["shard"]["plan"]

    merged_path = tmp_path / "all.json"
    run = bench("merge", *paths[::-1], "--out", str(merged_path))
    assert run.returncode == 0 and "2 of 2 shards" in run.stdout, run.stdout[-2000:] + run.stderr[-2000:]
    merged = load_result(str(merged_path))
    assert [b["extra_info"]["id"] for b in merged["benchmarks"]] == [ids[0][0], ids[1][0]]
    assert merged["harness"]["shard"]["merged"] == [1, 2] and not merged.get("partial")
    assert all(b["extra_info"]["images_per_s"]["median"] > 0 for b in merged["benchmarks"])
    assert main(["report", str(merged_path), "--out", str(tmp_path / "all.png")]) == 0

    # a third runner of the same plan, split in three: an empty shard that still writes its result
    empty = tmp_path / "shard-3-of-3.json"
    run = bench("throughput", *TINY.split(), "--shard", "3/3", "--bench-out", str(empty), "--", "-q")
    assert run.returncode == 0 and "nothing to measure" in run.stdout, run.stdout[-2000:] + run.stderr[-2000:]
    doc = json.loads(empty.read_text())
    assert doc["benchmarks"] == [] and doc["harness"]["shard"]["index"] == 3
    refused = bench("merge", paths[0], str(empty), "--out", str(tmp_path / "mixed.json"))
    assert refused.returncode == 2 and "split into 2 and 3 shards" in refused.stderr
    assert refused.stderr.count("\n") == 1 and not (tmp_path / "mixed.json").exists()
