"""The suite's options on pytest's command line; under plain ``pytest`` they build the plugin.

``python -m bench throughput`` hands pytest a ready ``ThroughputPlugin`` (plan resolved, device
session open); then the options here are registered but unused. Run directly
(``pytest bench/throughput/suite --models resnet20``), the plugin is built from them.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.throughput import plugin  # noqa: E402


def pytest_addoption(parser):
    plugin.add_options(parser)


def pytest_configure(config):
    if config.option.help or any(isinstance(p, plugin.ThroughputPlugin) for p in config.pluginmanager.get_plugins()):
        return
    config.pluginmanager.register(plugin.from_options(config), "cnn-bench-throughput")
