"""``python -m bench throughput --shard i/N`` on two runners and ``python -m bench merge`` end to end:
two real, tiny shards through the command line, merged, and read back as one run; then what merge
refuses in the files' contents (a case twice or outside the plan, a case without a result, other
versions) and an ``--out`` that is a shard, on hand-built shards."""

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


# -- the checks of what the shard files hold, on hand-built shards (nothing measured) -------------


def write(tmp_path: Path, docs: list[dict]) -> list[str]:
    paths = []
    for k, d in enumerate(docs, 1):
        paths.append(str(tmp_path / f"shard-{k}.json"))
        Path(paths[-1]).write_text(json.dumps(d))
    return paths


def merge(capsys, *args) -> tuple[int, str, str]:
    from bench.__main__ import main

    rc = main(["merge", *map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


def refused(capsys, tmp_path, docs, *flags) -> str:
    """The one line ``merge`` refuses ``docs`` with (exit 2, nothing written)."""
    out = tmp_path / "all.json"
    rc, _, err = merge(capsys, *write(tmp_path, docs), "--out", out, *flags)
    assert rc == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert not out.exists()
    return err


def tiny_shards(**kwargs) -> list[dict]:
    """resnet20 train and infer, one case a shard."""
    from tests.throughput.shard_documents import plan, shard_docs

    return shard_docs(2, plan(models=("resnet20",)), **kwargs)


def case_of(doc: dict) -> str:
    (cid,) = doc["harness"]["options"]["cases"]
    return cid


def test_a_case_recorded_twice_is_refused_naming_it_and_its_files(tmp_path, capsys):
    docs = tiny_shards()
    train, infer = case_of(docs[0]), case_of(docs[1])
    docs[1]["benchmarks"] += docs[0]["benchmarks"]  # shard 2 also holds shard 1's result
    err = refused(capsys, tmp_path, docs)
    assert f"case {train} is in two shards: " in err and "shard-1.json' and " in err and "shard-2.json'" in err

    docs = tiny_shards()
    docs[1]["benchmarks"] *= 2  # one shard, its case twice
    err = refused(capsys, tmp_path, docs)
    assert f"case {infer} is recorded twice in " in err and "shard-2.json' (2 entries in benchmarks)" in err


@pytest.mark.parametrize("field", ["cv", "utilization"])
def test_a_nan_in_a_shard_is_refused_before_anything_is_written(tmp_path, capsys, field):
    """strict JSON cannot write NaN: a shard holding one is one line at read, not a crash in write_json."""
    docs = tiny_shards()
    docs[0]["benchmarks"][0]["extra_info"][field] = float("nan")
    err = refused(capsys, tmp_path, docs)
    assert f"shard-1.json' benchmarks[0].extra_info: field '{field}' is nan; expected a finite number" in err


def test_a_case_outside_the_plan_or_its_shard_is_refused(tmp_path, capsys):
    from tests.throughput.documents import bench, case

    docs = tiny_shards()
    docs[1]["benchmarks"].append(bench(case("vgg16", "infer"), 10.0))
    err = refused(capsys, tmp_path, docs)
    assert "shard-2.json' has a result for case vgg16-infer-bs128" in err and "which is not in the plan" in err
    assert case_of(docs[0]) in err and case_of(docs[1]) in err  # the plan's cases: what would be valid

    docs = tiny_shards()  # shard 1's case in shard 2, shard 1 not given: not shard 2's case
    docs[1]["benchmarks"] += docs[0]["benchmarks"]
    err = refused(capsys, tmp_path, docs[1:], "--allow-partial")
    assert (
        f"has a result for case {case_of(docs[0])}, which is not one of shard 2/2's cases ({case_of(docs[1])})" in err
    )


def test_a_planned_case_with_neither_a_benchmark_nor_an_error_is_missing(tmp_path, capsys):
    from bench.regression.throughput import load_result
    from tests.throughput.documents import error

    docs = tiny_shards()
    infer, (measured,) = case_of(docs[1]), docs[1]["benchmarks"]
    docs[1]["benchmarks"] = []
    err = refused(capsys, tmp_path, docs)
    assert f"no result (neither a benchmark nor an error entry) for case {infer} of " in err
    assert "shard-2.json'" in err and "--allow-partial" in err

    out = tmp_path / "partial.json"
    rc, printed, _ = merge(capsys, *write(tmp_path, docs), "--out", out, "--allow-partial")
    assert rc == 0 and "2 of 2 shards" in printed and "1 of 2 cases; 1 case without a result, marked partial" in printed
    merged = load_result(str(out))
    assert merged["partial"] is True and merged["harness"]["partial"] is True
    assert merged["harness"]["shard"]["missing_cases"] == [infer] and merged["harness"]["shard"]["missing"] == []
    assert merged["harness"]["options"]["cases"] == [case_of(docs[0])]

    # a case that failed (out of memory, or its process died) is recorded as an error entry: it has a result
    docs[1]["errors"] = [error(measured["extra_info"]["case"], "out of memory")]
    rc, printed, _ = merge(capsys, *write(tmp_path, docs), "--out", tmp_path / "all.json")
    assert rc == 0 and "2 of 2 cases)" in printed
    merged = load_result(str(tmp_path / "all.json"))
    assert merged["harness"]["shard"]["missing_cases"] == [] and not merged.get("partial")


def with_versions(doc: dict, **versions) -> dict:
    """``doc`` with the versions a tensorflow run records, in ``machine_info`` and ``harness.versions``."""
    recorded = {"tensorflow": "2.21.0", "cuda_version": None, "cudnn_version": None} | versions
    doc["machine_info"] |= {"python_version": "3.11.7", "keras": "3.15.1", **recorded}
    doc["harness"]["versions"] = dict(recorded)
    return doc


def test_shards_of_different_versions_are_refused_naming_the_package_and_each_version(tmp_path, capsys):
    docs = [with_versions(d) for d in tiny_shards()]
    docs[1]["harness"]["versions"]["tensorflow"] = "2.20.0"
    err = refused(capsys, tmp_path, docs)
    assert "shards ran different versions of tensorflow (harness.versions): 2.21.0 in " in err
    assert "shard-1.json', 2.20.0 in " in err and "shard-2.json'" in err

    docs = [with_versions(d) for d in tiny_shards()]
    docs[1]["machine_info"]["python_version"] = "3.12.1"
    assert "different versions of python (machine_info): 3.11 in " in refused(capsys, tmp_path, docs)
    docs = [with_versions(d) for d in tiny_shards()]
    docs[0]["machine_info"]["keras"] = "3.14.0"
    assert "different versions of keras (machine_info): 3.14.0 in " in refused(capsys, tmp_path, docs)
    docs = [with_versions(d, cudnn_version="9.1") for d in tiny_shards()]
    docs[1]["harness"]["versions"]["cudnn_version"] = "8.9"
    assert "different versions of tensorflow cudnn_version (harness.versions): 9.1 in " in refused(
        capsys, tmp_path, docs
    )


def test_shards_on_other_cpus_of_the_same_versions_merge(tmp_path, capsys):
    """Runners of different CPU models are allowed (each benchmark keeps its device class); a
    version one shard does not record (None, or another backend's) is not compared."""
    from tests.throughput.shard_documents import plan, shard_doc

    whole = plan(models=("resnet20",))
    docs = [with_versions(shard_doc(whole, i, 2, dc=f"cpu:Model {i} x2")) for i in (1, 2)]
    docs[1]["harness"]["versions"]["cuda_version"] = "12.3"
    del docs[1]["machine_info"]["tensorflow"]
    docs[1]["machine_info"]["python_version"] = "3.11.9"  # another patch release of the same Python
    rc, printed, _ = merge(capsys, *write(tmp_path, docs), "--out", tmp_path / "all.json")
    assert rc == 0 and "2 of 2 cases)" in printed


@pytest.mark.parametrize("how", ["same path", "./ path", "symlink", "hard link"])
def test_out_naming_a_shard_is_refused_before_writing(tmp_path, capsys, monkeypatch, how):
    paths = write(tmp_path, tiny_shards())
    before = Path(paths[0]).read_bytes()
    monkeypatch.chdir(tmp_path)
    out = {"same path": paths[0], "./ path": "./shard-1.json"}.get(how, str(tmp_path / "out.json"))
    if how == "symlink":
        os.symlink(paths[0], out)
    elif how == "hard link":
        os.link(paths[0], out)
    rc, _, err = merge(capsys, "shard-1.json", paths[1], "--out", out)
    assert rc == 2 and err.count("\n") == 1, err
    assert f"--out '{out}' is the input 'shard-1.json'" in err and "give the output a path of its own" in err
    assert Path(paths[0]).read_bytes() == before
    rc, printed, _ = merge(capsys, "shard-1.json", paths[1], "--out", tmp_path / "all.json")
    assert rc == 0 and "2 of 2 shards" in printed  # the shard still merges
