"""Splitting a throughput plan into N shards (bench.throughput.shard): deterministic, every case
exactly once, balanced by estimated cost, and ``--shard i/N`` checked in one line."""

import dataclasses
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from bench.errors import UsageError
from bench.throughput import fanout
from bench.throughput import shard as sharding
from bench.throughput.plan import OPTIONS, dest, resolve
from bench.throughput.workload import Case
from tests.throughput.shard_documents import MACS, plan

REPO = Path(__file__).resolve().parents[2]


def opts(**over):
    return {dest(flag): kwargs.get("default") for flag, kwargs in OPTIONS.items()} | over


def _random_costs(seed: int, n: int) -> tuple[list[str], list[int]]:
    rng = random.Random(seed)
    ids = [f"case{k:03d}" for k in range(n)]
    return ids, [rng.choice([1, 5, 40, 41, 126, 253, 4089, 15470]) * rng.choice([8, 64, 128]) for _ in ids]


@pytest.mark.parametrize("text, expected", [("1/1", (1, 1)), ("2/3", (2, 3)), (" 4 / 4 ", (4, 4)), (None, None)])
def test_a_shard_is_i_of_n_numbered_from_1(text, expected):
    assert sharding.parse(text) == expected


@pytest.mark.parametrize(
    "text", ["0/2", "3/2", "1/0", "0/0", "-1/2", "1", "a/b", "1/2/3", "", "1.5/2", "1/2x", "١/٢", "1/²"]
)
def test_a_bad_shard_is_one_line_naming_it_and_what_is_valid(text):
    with pytest.raises(UsageError) as e:
        sharding.parse(text)
    assert str(e.value) == f"--shard {text!r} is invalid; valid: i/N with 1 <= i <= N (shards are numbered from 1)"


@pytest.mark.parametrize("seed, n, count", [(0, 1, 1), (1, 7, 2), (2, 30, 4), (3, 60, 7), (4, 5, 5), (5, 17, 3)])
def test_every_case_goes_to_exactly_one_shard_and_the_loads_differ_by_at_most_the_dearest_case(seed, n, count):
    ids, costs = _random_costs(seed, n)
    shares = sharding.assign(ids, costs, count)
    taken = sorted(k for share in shares for k in share)
    assert taken == list(range(n))
    assert all(share == sorted(share) for share in shares)  # each shard runs its cases in plan order
    loads = [sum(costs[k] for k in share) for share in shares]
    assert max(loads) - min(loads) <= max(costs)


def test_the_split_is_deterministic_and_does_not_depend_on_the_order_of_equal_cases():
    ids, costs = _random_costs(7, 40)
    first = sharding.assign(ids, costs, 4)
    assert all(sharding.assign(ids, costs, 4) == first for _ in range(3))
    # ties broken by id, not by position: the same cases listed in another order land on the same shards
    perm = list(range(40))
    random.Random(1).shuffle(perm)
    shuffled = sharding.assign([ids[k] for k in perm], [costs[k] for k in perm], 4)
    assert [sorted(ids[perm[k]] for k in s) for s in shuffled] == [sorted(ids[k] for k in s) for s in first]


def test_dearest_first_to_the_least_loaded_shard():
    # 8+5+4 | 7+6 (17 | 13) under LPT; dealt out in turn it would be 8+6+4 | 7+5 (18 | 12)
    assert sharding.assign(list("abcde"), [8, 7, 6, 5, 4], 2) == [[0, 3, 4], [1, 2]]
    assert sharding.assign(list("abc"), [5, 5, 5], 2) == [[0, 2], [1]]  # ties: by id, then the lower index


def test_more_shards_than_cases_leaves_the_last_shards_empty():
    whole = plan(models=("resnet20",))  # two cases
    picked = [sharding.select(whole.cases, whole.identity(), i, 5, MACS) for i in range(1, 6)]
    assert [len(cases) for cases, _ in picked] == [1, 1, 0, 0, 0]
    assert {r.plan for _, r in picked} == {sharding.digest(whole.identity())}
    assert [r.cost for _, r in picked][2:] == [0, 0, 0] and picked[0][1].plan_cost == sum(r.cost for _, r in picked)


def test_the_cost_is_macs_times_batch_and_training_costs_three_inferences():
    assert sharding.cost(Case("resnet56", "infer", 64), MACS) == 126 * 64
    assert sharding.cost(Case("resnet56", "train", 64), MACS) == 3 * 126 * 64


def test_the_plan_digest_ignores_where_results_go_but_not_what_is_measured():
    whole = plan()
    base = sharding.digest(whole.identity())
    for same in (dict(bench_out="elsewhere.json"), dict(plot="p.png"), dict(tpu="my-tpu"), dict(pytest_table=True)):
        assert sharding.digest(dataclasses.replace(whole, **same).identity()) == base
    for other in (dict(rounds=5), dict(seed=1), dict(device="gpu"), dict(cases=whole.cases[:-1])):
        assert sharding.digest(dataclasses.replace(whole, **other).identity()) != base
    assert base == sharding.digest(json.loads(json.dumps(whole.identity())))  # the same after a JSON round trip


def test_resolve_gives_each_shard_its_share_and_the_whole_plan_identity(monkeypatch):
    monkeypatch.setattr(sharding, "model_macs", lambda names: {n: MACS[n] for n in names})
    o = opts(models="resnet20,resnet56,resnet110", precision="fp32,mixed_bf16")
    whole = resolve(o)
    parts = [resolve(o | {"shard": f"{i}/3", "bench_out": f"s{i}.json"}) for i in (1, 2, 3)]
    ids = [c.id for p in parts for c in p.cases]
    assert sorted(ids) == sorted(c.id for c in whole.cases) and len(ids) == len(set(ids)) == 12
    assert {p.shard.plan for p in parts} == {sharding.digest(whole.identity())}
    assert all(p.shard.plan_cases == tuple(c.id for c in whole.cases) for p in parts)
    loads = [p.shard.cost for p in parts]
    assert max(loads) - min(loads) <= 3 * 253 * 128
    assert "shard" not in parts[0].to_dict() and parts[0].to_dict()["cases"] == [c.id for c in parts[0].cases]


def test_a_fanout_child_runs_only_the_cases_its_parent_assigned(monkeypatch):
    monkeypatch.setattr(sharding, "model_macs", lambda names: {n: MACS[n] for n in names})
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    o = opts(backend="tensorflow,jax", models="resnet20,resnet56", mode="train")
    parent = resolve(o | {"shard": "3/3"})  # the two resnet20 cases: one a backend
    children = fanout._children(parent)
    assert [b for b, _ in children] == ["tensorflow", "jax"] and len(parent.cases) == 2
    assert [b for b, _ in fanout._children(resolve(o | {"shard": "2/3"}))] == ["jax"]  # only backends with cases
    (backend, env), _ = children
    assert json.loads(env[fanout.CASES_ENV]) == [c.id for c in parent.cases if c.backend == backend]
    monkeypatch.setenv(fanout.CASES_ENV, env[fanout.CASES_ENV])
    child = fanout.assigned(resolve(opts(backend=backend, models="resnet20,resnet56", mode="train")))
    assert [c.id for c in child.cases] == [c.id for c in parent.cases if c.backend == backend]
    monkeypatch.delenv(fanout.CASES_ENV)
    empty = dataclasses.replace(parent, cases=())
    assert [(b, json.loads(env[fanout.CASES_ENV])) for b, env in fanout._children(empty)] == [("tensorflow", [])]
    assert all(fanout.CASES_ENV not in env for _, env in fanout._children(dataclasses.replace(parent, shard=None)))


def test_model_macs_are_counted_on_numpy_in_a_process_of_their_own():
    """The shard's costs come from the models' own counts, without building a model in this process."""
    sharding._macs.cache_clear()
    before = set(sys.modules)
    assert sharding.model_macs(["resnet20"]) == {"resnet20": 40_813_184}  # the zoo table's 0.041 G
    assert not {m for m in set(sys.modules) - before if m.startswith(("tensorflow", "keras"))}
    run = subprocess.run(
        [sys.executable, "-m", "bench.throughput.shard", "resnet_nope"], cwd=REPO, capture_output=True, text=True
    )
    assert run.returncode != 0


def test_an_empty_shard_with_a_plot_writes_its_result_says_why_no_figure_and_exits_0(monkeypatch, tmp_path, capsys):
    from bench.throughput import isolate

    monkeypatch.setattr(sharding, "model_macs", lambda names: {n: MACS[n] for n in names})
    o = opts(models="resnet20", mode="infer", bench_out=str(tmp_path / "r.json"), plot=str(tmp_path / "p.png"))
    empty = resolve(o | {"shard": "2/2"})  # one case, two shards
    assert empty.cases == ()
    assert isolate.run(empty, []) == 0
    out = capsys.readouterr().out
    assert "cnn-bench: no figure written to" in out and not (tmp_path / "p.png").exists()
    assert json.loads((tmp_path / "r.json").read_text())["harness"]["shard"]["index"] == 2
