"""Joining result documents (bench.throughput.merge): the shards of one plan into one run that
compare, report and baselines read as such, every refusal in one line, partial results kept partial;
and the backend merge of one run (fanout), which shares ``join``."""

import json
import shutil
from pathlib import Path

import pytest

from bench.errors import UsageError
from bench.throughput import fanout, merge
from bench.throughput.workload import Case
from tests.throughput.shard_documents import plan, shard_doc, shard_docs

REPO = Path(__file__).resolve().parents[2]
THROUGHPUT_BASELINES = REPO / "tests/regression/fixtures/throughput/baselines.json"


def write(tmp_path: Path, docs: list[dict], prefix="shard") -> list[str]:
    paths = []
    for k, d in enumerate(docs, 1):
        path = tmp_path / f"{prefix}-{k}.json"
        path.write_text(json.dumps(d))
        paths.append(str(path))
    return paths


def refused(tmp_path, docs, match, **kwargs):
    with pytest.raises(UsageError, match=match) as e:
        merge.shards(write(tmp_path, docs), **kwargs)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_shards_merge_into_one_run_in_plan_order(tmp_path):
    whole = plan()
    docs = shard_docs(3, whole)
    merged = merge.shards(write(tmp_path, docs[::-1]))  # any order of files
    ids = [c.id for c in whole.cases]
    assert [b["extra_info"]["id"] for b in merged["benchmarks"]] == ids
    assert merged["harness"]["options"]["cases"] == ids
    s = merged["harness"]["shard"]
    assert "index" not in s and s["merged"] == [1, 2, 3] and s["missing"] == [] and s["count"] == 3
    assert s["plan"] == docs[0]["harness"]["shard"]["plan"] and s["plan_cases"] == ids
    assert s["cost"] == s["plan_cost"] == sum(d["harness"]["shard"]["cost"] for d in docs)
    assert set(merged["harness"]["shards"]) == {"1", "2", "3"} and set(merged["machine_info"]["shards"]) == {
        "1",
        "2",
        "3",
    }
    assert merged["commit_info"]["id"] == "abc123" and not merged.get("partial")


def test_compare_report_and_baselines_read_the_merged_file_as_one_run(tmp_path, capsys):
    """The merged file, written by the command, read back by the other commands as one run."""
    from bench.__main__ import main
    from bench.regression.throughput import load_result, results
    from bench.throughput import report

    whole = plan()
    out, base = tmp_path / "all.json", tmp_path / "baselines.json"
    shutil.copy(THROUGHPUT_BASELINES, base)
    assert main(["merge", *write(tmp_path, shard_docs(2, whole)), "--out", str(out)]) == 0
    assert "2 of 2 shards" in capsys.readouterr().out
    doc = load_result(str(out))
    ids = [c.id for c in whole.cases]
    assert [r["key"].split("/", 1)[1] for r in results(doc)] == ids
    assert [r["id"] for r in report.rows([doc])] == ids and "resnet110" in report.backend_table([doc])
    assert main(["baselines", "update", str(out), "--baselines", str(base)]) == 0
    assert main(["compare", str(out), "--baselines", str(base)]) == 0
    assert f"{len(ids)} benchmark(s), 0 failing: OK" in capsys.readouterr().out
    assert main(["report", str(out), "--out", str(tmp_path / "all.png")]) == 0
    assert (tmp_path / "all.png").read_bytes()[:4] == b"\x89PNG"


def test_empty_shards_merge_with_the_others(tmp_path):
    whole = plan(models=("resnet20",))
    docs = shard_docs(4, whole)
    assert [len(d["benchmarks"]) for d in docs] == [1, 1, 0, 0]
    merged = merge.shards(write(tmp_path, docs))
    assert len(merged["benchmarks"]) == 2 and merged["harness"]["shard"]["merged"] == [1, 2, 3, 4]


def test_a_partial_shard_makes_the_merged_file_partial(tmp_path):
    docs = shard_docs(2)
    docs[1]["partial"] = docs[1]["harness"]["partial"] = True
    merged = merge.shards(write(tmp_path, docs))
    assert merged["partial"] is True and merged["harness"]["partial"] is True
    assert merged["harness"]["shard"]["missing"] == []


def test_missing_shards_are_named_and_allow_partial_merges_the_rest_marked_partial(tmp_path):
    docs = shard_docs(4)
    message = refused(tmp_path, docs[:1] + docs[2:3], "shards 2, 4 of 4 are missing")
    assert "--allow-partial" in message and docs[0]["harness"]["shard"]["plan"] in message
    refused(tmp_path, docs[:3], r"shard 4 of 4 is missing")
    merged = merge.shards(write(tmp_path, docs[:1] + docs[2:3]), allow_partial=True)
    assert merged["partial"] is True and merged["harness"]["partial"] is True
    assert merged["harness"]["shard"]["missing"] == [2, 4] and merged["harness"]["shard"]["merged"] == [1, 3]
    ran = [c for d in (docs[0], docs[2]) for c in d["harness"]["options"]["cases"]]
    assert sorted(merged["harness"]["options"]["cases"]) == sorted(ran)


def test_shards_of_different_plans_are_refused_saying_what_differs(tmp_path):
    docs = shard_docs(2)
    assert "options differ: rounds 10 vs 5" in refused(
        tmp_path, [docs[0], shard_doc(plan(rounds=5), 2, 2)], "shards of different plans"
    )
    other_models = shard_doc(plan(models=("resnet20", "resnet56")), 2, 2)
    assert "their case lists differ" in refused(tmp_path, [docs[0], other_models], "shards of different plans")
    assert "split into 2 and 3 shards" in refused(tmp_path, [docs[0], shard_doc(plan(), 2, 3)], "different plans")


def test_shards_of_different_commits_are_refused(tmp_path):
    docs = shard_docs(2)
    other = shard_doc(plan(), 2, 2, commit="def456")
    refused(tmp_path, [docs[0], other], r"shards of different commits: .*shard-1.json' at abc123 and .* at def456")


def test_a_shard_given_twice_is_refused(tmp_path):
    docs = shard_docs(2)
    refused(tmp_path, [docs[0], docs[1], docs[1]], r"shard 2/2 is given twice: .*shard-2.json' and .*shard-3.json'")
    (path,) = write(tmp_path, docs[:1])
    with pytest.raises(UsageError, match="shard 1/2 is given twice"):
        merge.shards([path, path])


def test_files_that_are_no_shard_are_refused(tmp_path):
    docs = shard_docs(2)
    plain = json.loads((REPO / "tests/regression/fixtures/throughput/run_noise.json").read_text())
    refused(tmp_path, [docs[0], plain], r"shard-2.json' is not a shard's result \(no harness.shard")
    merged = merge.shards(write(tmp_path, docs, prefix="m"))
    refused(tmp_path, [merged], r"is already a merged result \(shards \[1, 2\]\)")
    train = json.loads((REPO / "tests/regression/fixtures/accuracy/results/result_pass.json").read_text())
    refused(tmp_path, [docs[0], train], "is not a throughput result")
    with pytest.raises(UsageError, match="merge needs the shard result files"):
        merge.shards([])


def test_unreadable_and_ill_typed_files_are_refused(tmp_path):
    docs = shard_docs(2)
    (tmp_path / "bad.json").write_text('{"harness": ')
    with pytest.raises(UsageError, match="bad.json' is not valid JSON"):
        merge.shards([*write(tmp_path, docs[:1]), str(tmp_path / "bad.json")])
    with pytest.raises(UsageError, match="nope.json' does not exist"):
        merge.shards([str(tmp_path / "nope.json")])
    docs[1]["harness"]["shard"]["index"] = "two"
    refused(tmp_path, docs, r"harness.shard: field 'index' is 'two'; expected a whole number")
    docs[1]["harness"]["shard"]["index"] = 3
    refused(tmp_path, docs, "harness.shard index 3 is outside 1..2")


@pytest.mark.parametrize(
    "where, value, said",
    [
        (("harness", "shard", "cost"), "x", r"harness.shard: field 'cost' is 'x'; expected a number"),
        (("harness", "shard", "plan_cost"), [1], r"harness.shard: field 'plan_cost' is \[1\]; expected a number"),
        (("harness", "versions"), "s", r"harness: field 'versions' is 's'; expected an object"),
        (("harness", "backends"), {"tensorflow": "x"}, r"harness.backends.tensorflow must be an object, not str"),
        (("harness", "backends"), {"tensorflow": {"versions": 1}}, r"harness.backends.tensorflow: field 'versions'"),
        (("machine_info", "backends"), {"tensorflow": "x"}, r"machine_info.backends.tensorflow must be an object"),
        (("machine_info", "backends"), "x", r"machine_info: field 'backends' is 'x'; expected an object"),
    ],
)
def test_ill_typed_sections_merge_reads_are_one_line_not_a_traceback(tmp_path, where, value, said):
    """merge summed harness.shard.cost and walked each backend's machine_info and harness.versions
    unchecked: a string there was a TypeError or AttributeError traceback."""
    docs = shard_docs(2)
    *parents, leaf = where
    node = docs[0]
    for key in parents:
        node = node[key]
    node[leaf] = value
    refused(tmp_path, docs, said)


def test_a_shard_whose_record_does_not_match_its_options_is_refused(tmp_path):
    docs = shard_docs(2)
    docs[1]["harness"]["options"]["seed"] = 7  # edited after the run: its plan digest no longer matches
    refused(tmp_path, docs, r"shard-2.json': harness.shard.plan \w+ does not match its options")
    docs = shard_docs(2)
    docs[1]["harness"]["options"]["cases"] += docs[0]["harness"]["options"]["cases"][:1]
    refused(tmp_path, docs, r"case resnet\S+ is in two shards")


def test_shards_that_ran_different_backends_merge_into_a_multi_backend_run(tmp_path):
    from bench.environment import machine_line

    cases = tuple(Case(m, "infer", 8, backend=b) for m in ("resnet20", "resnet56") for b in ("tensorflow", "jax"))
    whole = plan(backends=("tensorflow", "jax"), cases=cases)
    docs = shard_docs(2, whole)
    for d in docs:
        (backend,) = {b["extra_info"]["case"]["backend"] for b in d["benchmarks"]}
        info = {"keras": "3.15.1", "backend": backend, backend: "1.0", "python_version": "3.11", "cpu": {}}
        d["machine_info"] = info
        d["harness"]["backend"] = backend
    merged = merge.shards(write(tmp_path, docs))
    assert merged["machine_info"]["backend"] == merged["harness"]["backend"] == "tensorflow,jax"
    assert "on tensorflow 1.0 + jax 1.0 /" in machine_line(merged["machine_info"])


def test_the_backend_merge_keeps_a_partial_backend_partial():
    """fanout's merge shares ``join``: a backend's interrupted run is no longer hidden behind the first's."""
    docs = [shard_doc(plan(), 1, 1), shard_doc(plan(), 1, 1)]
    docs[0]["harness"]["backend"], docs[1]["harness"]["backend"] = "tensorflow", "jax"
    docs[1]["partial"] = docs[1]["harness"]["partial"] = True
    merged = fanout.merge(docs)
    assert merged["partial"] is True and merged["harness"]["partial"] is True
    assert merged["harness"]["backend"] == "tensorflow,jax" and not merged["harness"]["backends"]["tensorflow"].get(
        "partial"
    )
