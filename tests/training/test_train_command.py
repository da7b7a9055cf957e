"""``python -m bench train`` (``bench.commands.train``): how the command runs, apart from training itself."""

import signal

from bench import processes
from bench.__main__ import main


def test_sigterm_ends_a_training_run_as_an_exception_so_its_cleanups_run():
    """SIGTERM raises SystemExit (exit 143) in train, as in ab and throughput: `finally` blocks run."""
    previous = signal.getsignal(signal.SIGTERM)
    try:
        assert main(["train", "smoke_resnet20_cifar10_jpeg", "--mock", "4", "--out", ""]) == 2  # stops up front
        assert signal.getsignal(signal.SIGTERM) is processes._exit
    finally:
        signal.signal(signal.SIGTERM, previous)
