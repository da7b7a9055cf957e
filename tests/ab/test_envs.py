"""The pkg: environment cache, with uv stubbed out: built once per spec, reused, rebuilt if half-built,
and an unresolvable version reported on one line."""

import subprocess

import pytest

from bench.ab import envs, sides
from bench.errors import UsageError


class FakeUv:
    """Records uv's calls; ``pip install`` fails with uv's message when ``fail`` is set; ``pip freeze``
    answers ``freeze``, or the overrides installed (as uv does for packages the project requires)."""

    def __init__(self, fail: str | None = None, freeze: str | None = None):
        self.calls, self.fail, self.freeze, self.overrides = [], fail, freeze, ""

    def __call__(self, argv, **kwargs):
        from pathlib import Path

        self.calls.append(argv[1:3])
        if argv[1:3] == ["pip", "install"] and self.fail:
            return subprocess.CompletedProcess(argv, 1, "", self.fail)
        if argv[1] == "venv":  # the interpreter a cached entry is checked for
            python = Path(argv[-1]) / "bin" / "python"
            python.parent.mkdir(parents=True)
            python.write_text("")
            python.chmod(0o755)
        if argv[1:3] == ["pip", "install"]:  # uv installs the overrides of packages the project requires
            self.install_argv = argv
            self.overrides = Path(argv[argv.index("--override") + 1]).read_text()
        out = ""
        if argv[1:3] == ["pip", "freeze"]:
            out = self.freeze if self.freeze is not None else f"{self.overrides}tensorflow-cpu==2.21.0\n"
        return subprocess.CompletedProcess(argv, 0, out, "")


def test_built_once_then_reused(tmp_path):
    side = sides.parse("pkg:keras==3.14.0")
    uv = FakeUv()
    first = envs.ensure(side, run=uv, root=tmp_path, log=lambda *a: None)
    assert not first["cached"] and first["packages"]["keras"] == "3.14.0"
    assert ["pip", "install"] in uv.calls
    assert "--compile-bytecode" in uv.install_argv  # or every process of the side compiles its framework again
    requirements = (tmp_path / first["hash"] / "requirements.txt").read_text()
    assert "keras==3.15.1" in requirements and "pytest-benchmark" in requirements  # the project's pins ...
    assert (tmp_path / first["hash"] / "overrides.txt").read_text() == "keras==3.14.0\n"  # ... overridden
    uv.calls.clear()
    again = envs.ensure(side, run=uv, root=tmp_path, log=lambda *a: None)
    assert again["cached"] and again["hash"] == first["hash"] and uv.calls == []
    other = envs.ensure(sides.parse("pkg:keras==3.13.0"), run=uv, root=tmp_path, log=lambda *a: None)
    assert other["hash"] != first["hash"]


def test_a_half_built_environment_is_rebuilt(tmp_path):
    side = sides.parse("pkg:keras==3.14.0")
    key = sides.spec_hash(envs.spec(side))
    (tmp_path / key / "venv").mkdir(parents=True)  # no marker: the last build was interrupted
    uv = FakeUv()
    assert not envs.ensure(side, run=uv, root=tmp_path, log=lambda *a: None)["cached"]
    assert ["venv", "--quiet"] in uv.calls


def test_unresolvable_version_is_one_line(tmp_path):
    message = (
        "  × No solution found when resolving dependencies:\n"
        "  ╰─▶ Because there is no version of keras==9.9.9 and you require keras==9.9.9, we can conclude that your requirements are unsatisfiable.\n"
    )
    with pytest.raises(UsageError) as e:
        envs.ensure(sides.parse("pkg:keras==9.9.9"), run=FakeUv(fail=message), root=tmp_path, log=lambda *a: None)
    assert "\n" not in str(e.value)
    assert "Because there is no version of keras==9.9.9" in str(e.value)
    assert not (tmp_path / sides.spec_hash(envs.spec(sides.parse("pkg:keras==9.9.9"))) / envs.MARKER).exists()


class FakeCompile:
    """``uv pip compile``: answers ``stdout`` (or fails with ``stderr``) and records what it was asked."""

    def __init__(self, stdout: str = "", stderr: str = "", rc: int = 0):
        self.stdout, self.stderr, self.rc, self.calls = stdout, stderr, rc, []

    def __call__(self, argv, **kwargs):
        self.calls.append((argv[1:], kwargs.get("input")))
        return subprocess.CompletedProcess(argv, self.rc, self.stdout, self.stderr)


def test_latest_is_pinned_to_the_newest_release_before_the_cache_key():
    uv = FakeCompile("keras==3.16.0\ntensorflow-cpu==2.22.0\n")
    side = sides.parse("pkg:Keras[jax]==latest,tensorboard==2.20.0,tensorflow_cpu==latest")
    pinned = envs.pin_latest(side, run=uv, log=lambda *a: None)
    assert pinned.packages == ("Keras[jax]==3.16.0", "tensorboard==2.20.0", "tensorflow_cpu==2.22.0")
    assert pinned.text == side.text and pinned.latest == ()
    ((args, asked),) = uv.calls
    assert args[:3] == ["pip", "compile", "-"] and "--no-deps" in args
    assert asked.split() == ["Keras[jax]", "tensorflow_cpu"]
    # the environment is keyed by the versions: a new release gets its own
    assert envs.spec(pinned)["overrides"] == list(pinned.packages)


def test_a_range_is_pinned_too_so_a_new_release_is_not_hidden_by_the_cache():
    """``keras>=3.0`` built once would otherwise be reused after every later release."""
    uv = FakeCompile("# via uv\nkeras==3.16.0\n\njax==0.10.1 ; python_version >= '3.11'\n")
    side = sides.parse("pkg:keras>=3.0,jax[cpu]~=0.10; python_version >= '3.11',tensorboard==2.20.0")
    assert side.latest == ("keras>=3.0", 'jax[cpu]~=0.10; python_version >= "3.11"')
    pinned = envs.pin_latest(side, run=uv, log=lambda *a: None)
    assert pinned.packages == ("keras==3.16.0", 'jax[cpu]==0.10.1; python_version >= "3.11"', "tensorboard==2.20.0")
    assert pinned.latest == ()
    ((_, asked),) = uv.calls
    assert asked.splitlines() == list(side.latest)


@pytest.mark.parametrize("text", ["keras==3.*", "keras~=3.10", "keras>=3.0", "keras!=3.10.0"])
def test_only_one_version_counts_as_pinned(text):
    assert sides.parse(f"pkg:{text}").latest == (sides.parse(f"pkg:{text}").packages[0],)
    assert sides.parse("pkg:keras==3.15.1").latest == sides.parse("pkg:keras===3.15.1").latest == ()


def test_nothing_to_pin_asks_uv_nothing():
    uv = FakeCompile()
    side = sides.parse("pkg:keras==3.14.0")
    assert envs.pin_latest(side, run=uv, log=lambda *a: None) is side and uv.calls == []


@pytest.mark.parametrize(
    "uv, reason",
    [
        (
            FakeCompile(
                stderr="error: No solution found when resolving dependencies\n  cause: Because nosuch was not found"
                " in the package registry and you require nosuch, we can conclude that your requirements are unsatisfiable.\n",
                rc=1,
            ),
            "Because nosuch was not found in the package registry",
        ),
        (FakeCompile("tensorflow-cpu==2.22.0\n"), "uv pip compile named no version of 'nosuch'"),
    ],
    ids=["unknown to the registry", "missing from uv's answer"],
)
def test_a_name_that_does_not_resolve_is_one_line(uv, reason):
    with pytest.raises(UsageError) as e:
        envs.pin_latest(sides.parse("pkg:nosuch==latest"), run=uv, log=lambda *a: None)
    assert "\n" not in str(e.value) and reason in str(e.value) and "'pkg:nosuch==latest'" in str(e.value)


@pytest.mark.parametrize(
    ("spec", "freeze", "said"),
    [
        ("pkg:kears==3.13.0", "keras==3.15.1\n", "'kears' is not installed"),  # uv dropped the override
        ("pkg:nosuchpkgxyz==2.0", "keras==3.15.1\n", "'nosuchpkgxyz' is not installed"),
        ("pkg:keras==3.13.0", "keras==3.15.1\n", "'keras==3.13.0' asked, but keras 3.15.1 was installed"),
    ],
)
def test_a_package_not_installed_as_asked_is_one_line_and_no_environment(tmp_path, spec, freeze, said):
    side = sides.parse(spec)
    with pytest.raises(UsageError, match=said) as e:
        envs.ensure(side, run=FakeUv(freeze=freeze), root=tmp_path, log=lambda *a: None)
    assert "\n" not in str(e.value)
    assert not (tmp_path / sides.spec_hash(envs.spec(side))).exists()


def _damage_venv(path):
    import shutil

    shutil.rmtree(path / "venv")


@pytest.mark.parametrize(
    "damage",
    [
        _damage_venv,
        lambda path: (path / envs.MARKER).write_text("{}"),
        lambda path: (path / envs.MARKER).write_text('{"python": "/x'),
        lambda path: (path / envs.MARKER).write_text("[]"),
    ],
    ids=["venv-removed", "empty-record", "truncated-record", "not-an-object"],
)
def test_a_damaged_environment_is_rebuilt_and_says_so(tmp_path, damage):
    side = sides.parse("pkg:keras==3.14.0")
    first = envs.ensure(side, run=FakeUv(), root=tmp_path, log=lambda *a: None)
    damage(tmp_path / first["hash"])
    logged, uv = [], FakeUv()
    again = envs.ensure(side, run=uv, root=tmp_path, log=logged.append)
    assert not again["cached"] and ["venv", "--quiet"] in uv.calls
    assert any("rebuilding it" in line for line in logged)
    assert envs.ensure(side, run=FakeUv(), root=tmp_path, log=lambda *a: None)["cached"]


def test_two_builds_of_one_spec_take_turns(tmp_path):
    """The second waits for the first's lock and reuses its environment instead of removing it half-built."""
    import threading
    import time

    side = sides.parse("pkg:keras==3.14.0")
    started, release, results = threading.Event(), threading.Event(), []

    class SlowUv(FakeUv):
        def __call__(self, argv, **kwargs):
            if argv[1:3] == ["pip", "install"]:
                started.set()
                release.wait(10)
            return super().__call__(argv, **kwargs)

    first = threading.Thread(
        target=lambda: results.append(envs.ensure(side, run=SlowUv(), root=tmp_path, log=lambda *a: None))
    )
    first.start()
    assert started.wait(10)
    second = threading.Thread(
        target=lambda: results.append(envs.ensure(side, run=FakeUv(), root=tmp_path, log=lambda *a: None))
    )
    second.start()
    time.sleep(0.5)
    assert second.is_alive()  # waiting for the lock, not removing the first's half-built tree
    release.set()
    first.join(10)
    second.join(10)
    assert [r["cached"] for r in results] == [False, True]
