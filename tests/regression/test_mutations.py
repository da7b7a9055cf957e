"""The mutation table's edits stay applicable: each anchor is in the source exactly once."""

import pytest

from bench.environment import REPO_ROOT
from bench.regression import mutations


@pytest.mark.parametrize("mutation", mutations.MUTATIONS, ids=lambda m: m.name)
def test_every_mutation_applies_to_this_tree(mutation, tmp_path):
    assert (REPO_ROOT / mutation.path).read_text().count(mutation.old) == 1
    target = tmp_path / mutation.path
    target.parent.mkdir(parents=True)
    target.write_text((REPO_ROOT / mutation.path).read_text())
    mutations.apply(tmp_path, mutation)
    assert mutation.new in target.read_text() and mutation.old not in target.read_text().replace(mutation.new, "")


def test_a_stale_anchor_is_an_error(tmp_path):
    m = mutations.MUTATIONS[0]
    (tmp_path / m.path).parent.mkdir(parents=True)
    (tmp_path / m.path).write_text("nothing to mutate here")
    with pytest.raises(LookupError, match="0 times, not once"):
        mutations.apply(tmp_path, m)


def test_names_are_unique_and_cover_every_kind():
    names = [m.name for m in mutations.MUTATIONS]
    assert len(names) == len(set(names)) >= 8
    assert {m.kind for m in mutations.MUTATIONS} == {"model", "recipe", "training", "data", "evaluation"}
