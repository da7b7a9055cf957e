"""Side specs: parsing, bad specs (one line, exit 2), git refs resolved in a throw-away repository."""

import re
import subprocess

import pytest

from bench.__main__ import main
from bench.ab import sides
from bench.errors import UsageError


@pytest.mark.parametrize(
    "text, ref, packages, backend",
    [
        (".", None, (), None),
        ("git:origin/main", "origin/main", (), None),
        ("pkg:keras==3.14.0", None, ("keras==3.14.0",), None),
        (
            "pkg:tensorflow-cpu==2.20.0, tensorboard==2.20.0",
            None,
            ("tensorflow-cpu==2.20.0", "tensorboard==2.20.0"),
            None,
        ),
        ("backend:jax", None, (), "jax"),
        ("git:HEAD~3+pkg:keras==3.14.0+backend:jax", "HEAD~3", ("keras==3.14.0",), "jax"),
        ("pkg:keras==latest", None, ("keras==latest",), None),
        ("pkg:Keras[jax] == LATEST,tensorboard==2.20.0", None, ("Keras[jax]==latest", "tensorboard==2.20.0"), None),
    ],
)
def test_parse(text, ref, packages, backend):
    side = sides.parse(text)
    assert (side.ref, side.packages, side.backend) == (ref, packages, backend)


@pytest.mark.parametrize(
    "text, message",
    [
        ("main", "did you mean git:main?"),
        ("HEAD~3", "did you mean git:HEAD~3?"),
        ("jax", "did you mean backend:jax?"),
        ("keras==3.14.0", "did you mean pkg:keras==3.14.0?"),
        ("git:HEAD+jax", "did you mean backend:jax?"),
        ("svn:123", "is not one of git:REF"),
        ("", "a side is empty"),
        ("  ", "a side is empty"),
        ("git:", "needs a value"),
        ("git:a+git:b", "names git: twice"),
        ("pkg:keras", "needs a version"),
        ("pkg:keras=3.14", "is not a package requirement"),
        ("backend:mxnet", "backend 'mxnet' is invalid"),
        ("pkg:keras>=3==latest", "==latest takes a bare name"),
        ("pkg:==latest", "is not a package requirement"),
        ("pkg:keras==newest", "is not a package requirement"),
    ],
)
def test_bad_specs(text, message):
    with pytest.raises(UsageError, match=re.escape(message)) as e:
        sides.parse(text)
    assert "\n" not in str(e.value)  # one line
    assert ("did you mean" in str(e.value)) == ("did you mean" in message)


def test_latest_names_the_packages_still_to_pin():
    assert sides.parse("pkg:keras==latest,tensorflow-cpu==2.21.0,jax[cpu]==latest").latest == ("keras", "jax[cpu]")
    assert sides.parse("pkg:keras==3.15.1").latest == ()


def test_environment_spec_names_the_backend_framework():
    assert sides.parse("pkg:keras==3.14.0+backend:jax").extras == ["cpu", "jax"]
    assert sides.spec_hash({"a": [1]}) == sides.spec_hash({"a": [1]}) != sides.spec_hash({"a": [2]})


@pytest.fixture
def repo(tmp_path):
    run = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)
    run("init", "-q")
    (tmp_path / "f").write_text("1")
    run("add", "f")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    return tmp_path


def test_resolve_a_ref_and_refuse_an_unknown_one(repo):
    side = sides.resolve(sides.parse("git:HEAD"), repo)
    assert len(side.commit) == 40
    with pytest.raises(UsageError, match="'nope' is not a commit of the repository"):
        sides.resolve(sides.parse("git:nope"), repo)


def test_cli_bad_input_is_one_line_and_exit_2(repo, capsys):
    assert main(["ab", "git:nope", "--repo", str(repo), "--out", str(repo / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: side 'git:nope': 'nope' is not a commit of the repository at {str(repo)!r}"]
    assert main(["ab", "pkg:keras"]) == 2
    assert main(["ab", "git:HEAD", "--pairs", "1"]) == 2
