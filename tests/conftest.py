"""Shared test set-up: quiet TensorFlow, and one cache of built models for the whole session."""

import functools
import os
import signal

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The suites run in pytest-xdist workers (noxfile), which announce themselves in the environment, and
# pytest-benchmark disables itself wherever it sees that: in this process and in every pytest that the
# harness starts in it or in its children. The harness is tested as a user runs it, who is no such worker.
for _name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
    os.environ.pop(_name, None)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def build():
    """``build(name, **overrides)``: a model built once per session and shared by the tests."""
    import models

    @functools.cache
    def cached(name, frozen):
        return models.create(name, **dict(frozen))

    return lambda name, **overrides: cached(name, tuple(sorted(overrides.items())))


@pytest.fixture
def ctrl_c():
    """Ctrl-C raises KeyboardInterrupt in this test, as at a terminal, whatever this process inherited
    (one started in the background by a non-interactive shell, ``nohup`` or ``cmd &``, inherits SIGINT
    ignored); the inherited handler is back afterwards."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
