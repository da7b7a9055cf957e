"""noxfile.py's sessions install what their command will run on: they read the command's arguments as
the command does (its own options, by argparse). nox itself is a stand-in here: the unit environment
does not install it, and no session runs."""

import importlib.util
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def noxfile():
    fake = types.ModuleType("nox")
    fake.options = types.SimpleNamespace()
    fake.session = lambda *args, **kwargs: lambda f: f
    fake.Session = object
    saved = sys.modules.get("nox")
    sys.modules["nox"] = fake
    try:
        spec = importlib.util.spec_from_file_location("noxfile_under_test", ROOT / "noxfile.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            del sys.modules["nox"]
        else:
            sys.modules["nox"] = saved
    return module


class Session:
    """What a session asks of nox: the packages it installs and the commands it runs."""

    venv_backend = "uv"

    def __init__(self, *posargs):
        self.posargs = list(posargs)
        self.installed, self.ran = [], []

    def install(self, *args, env=None):
        self.installed.append(args)
        self.install_env = env

    def run(self, *args, **kwargs):
        self.ran.append(args)

    def error(self, message):
        raise SystemExit(message)

    @property
    def extras(self) -> str:
        (editable,) = [a[1] for a in self.installed if a[0] == "-e"]
        return editable


@pytest.mark.parametrize(
    "posargs, extras",
    [
        (["--device", "cpu", "--device", "gpu"], ".[gpu]"),  # the last one, as argparse reads it
        (["--dev", "gpu", "--backend=jax"], ".[gpu,jax-cuda]"),  # an abbreviation, FLAG=VALUE
        (["--device", "cpu", "--", "--device", "gpu"], ".[cpu]"),  # after --: pytest's arguments
        (["--models", "resnet20", "--back", "torch"], ".[cpu,torch]"),
        ([], ".[cpu]"),
    ],
)
def test_bench_installs_what_the_throughput_command_will_use(noxfile, posargs, extras):
    session = Session(*posargs)
    noxfile.bench(session)
    assert session.extras == extras
    assert session.ran[0][:4] == ("python", "-m", "bench", "throughput") and list(session.ran[0][4:]) == posargs


@pytest.mark.parametrize("name", ["unit", "bench", "train", "smoke", "nightly", "ab", "gate"])
def test_the_harness_is_installed_with_bytecode(noxfile, name):
    """uv writes no bytecode unless told; where PYTHONDONTWRITEBYTECODE is set (CI's machine), each process
    would compile TensorFlow's sources again (import tensorflow: 22.7 s of CPU, 9.3 s with bytecode)."""
    session = Session()
    getattr(noxfile, name)(session)
    assert session.installed and session.install_env == {"UV_COMPILE_BYTECODE": "1"}


@pytest.mark.parametrize(
    "posargs, parallel",
    [
        ([], True),  # the unit set (UNIT_ARGS)
        (["tests", "-q", "-m", "slow"], True),  # CI's slow set
        (["tests/test_noxfile.py", "-n", "0"], False),  # in this process (pdb, -s)
        (["tests", "-n4"], False),
        (["tests", "--numprocesses=3"], False),
        (["tests", "-p", "no:xdist"], False),
    ],
)
def test_unit_runs_the_tests_in_xdist_workers_unless_told_otherwise(noxfile, posargs, parallel):
    session = Session(*posargs)
    noxfile.unit(session)
    assert ("--group", "test") in session.installed  # pytest-xdist
    (run,) = session.ran
    given = posargs or list(noxfile.UNIT_ARGS)
    assert posargs or ("-m", "not slow and not nightly") == tuple(given[2:4])  # the unit set leaves those out
    assert run[0] == "pytest" and list(run[1 : 1 + len(given)]) == given
    assert (run[-len(noxfile.PARALLEL) :] == noxfile.PARALLEL) is parallel
    assert ("--dist" in run) is parallel


def test_an_ambiguous_or_bad_option_is_one_line_before_anything_is_installed(noxfile):
    session = Session("--d", "gpu")
    with pytest.raises(SystemExit, match=r"^python -m bench throughput: ambiguous option: --d could match") as e:
        noxfile.bench(session)
    assert "\n" not in str(e.value) and session.installed == []
    with pytest.raises(SystemExit, match="--device 'gpux' is invalid; valid: cpu, gpu, tpu"):
        noxfile.bench(Session("--device", "gpux"))


@pytest.mark.parametrize("name", ["train", "smoke", "nightly"])
def test_training_sessions_install_the_backend_and_device_they_train_on(noxfile, name):
    args = ["smoke_resnet20_cifar10_jpeg"] if name == "train" else []
    session = Session(*args, "--device", "cpu", "--backend", "jax", "--dev", "gpu")
    getattr(noxfile, name)(session)
    assert session.extras == ".[gpu,jax-cuda]"


def test_nightly_installs_for_a_gpu_unless_told_otherwise(noxfile):
    for posargs, extras in (([], ".[gpu]"), (["--device", "tpu"], ".[tpu]"), (["--backend", "torch"], ".[gpu,torch]")):
        session = Session(*posargs)
        noxfile.nightly(session)
        assert session.extras == extras


def test_what_noxfile_imports_needs_nothing_outside_the_standard_library():
    """nox's own Python has no NumPy or framework: the commands' option tables noxfile.py reads must not import one."""
    import subprocess

    code = (
        "import sys; import bench.commands.throughput, bench.training.options, bench.backends, bench.training.recipes; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('numpy', 'scipy', 'tensorflow', 'keras', 'jax', 'torch', 'pytest', 'models')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def last(args, flag: str) -> str:
    """The value of the last ``flag`` in ``args`` (argparse's: the last wins)."""
    return args[len(args) - list(reversed(args)).index(flag)]


class Training(Session):
    """A session whose `bench train` writes a result into the --out it is given (the last one), as train does."""

    def run(self, *args, **kwargs):
        super().run(*args, **kwargs)
        if args[3] == "train":
            out = Path(last(args, "--out"))
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{args[4]}-{len(self.ran)}.json").write_text("{}")
        return True


def test_smoke_gates_the_result_it_wrote_in_the_out_train_used(noxfile, tmp_path, monkeypatch):
    """`nox -s smoke -- --out DIR`: the gate reads DIR's new result, not results/smoke, nor a result kept there."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "kept-from-yesterday.json").write_text("{}")
    session = Training("--out", "mine")
    noxfile.smoke(session)
    gate = session.ran[-1]
    assert gate[:4] == ("python", "-m", "bench", "gate")
    assert list(gate[4:]) == [str(Path("mine") / "smoke_resnet20_cifar10_jpeg-2.json")]


def test_smoke_with_no_result_written_fails(noxfile, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    session = Session()
    session.run = lambda *a, **kw: session.ran.append(a) or True  # ran, wrote nothing
    with pytest.raises(SystemExit, match="1 training run\\(s\\) wrote 0 result\\(s\\) in results/smoke"):
        noxfile.smoke(session)
    assert not any(a[3] == "gate" for a in session.ran)


def test_nightly_trains_on_the_device_it_installed_for(noxfile, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for posargs, device in (([], "gpu"), (["--device", "tpu"], "tpu")):
        session = Training(*posargs)
        noxfile.nightly(session)
        trains = [a for a in session.ran if a[3] == "train"]
        assert trains and all(last(a, "--device") == device for a in trains)
        assert len(session.ran[-1][4:]) == len(trains)  # the gate: each run's own result


def test_the_throughput_tools_are_dependencies_of_the_harness_pinned_once():
    """`pip install -e '.[cpu]'` gives an environment `python -m bench throughput` runs in: pytest and
    pytest-benchmark are runtime dependencies, each pinned in one place."""
    import re
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = project["project"]["dependencies"]
    assert {"pytest==9.0.3", "pytest-benchmark==5.3.1"} <= set(deps)
    everywhere = deps + [r for group in project.get("dependency-groups", {}).values() for r in group]
    names = [re.split(r"[=<>\[ ;]", r, maxsplit=1)[0].lower() for r in everywhere]
    assert len(names) == len(set(names))
