"""pytest glue: a tests/mp test that calls mputil.skip() is reported as SKIPPED, not passed."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Generator

import mqttbroker
import pytest
from mputil import Skipped
from mqttbroker import Broker

# Host key files (bedside_host.keys) written by SILs and `bedside provision` in tests go to a
# throw-away config directory, never the user's (subprocesses inherit it).
if "BEDSIDE_TEST_CONFIG" not in os.environ:
    os.environ["BEDSIDE_TEST_CONFIG"] = tempfile.mkdtemp(prefix="bedside-test-config-")
    os.environ["XDG_CONFIG_HOME"] = os.environ["BEDSIDE_TEST_CONFIG"]


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    try:
        return (yield)
    except Skipped as e:
        pytest.skip(f"{pyfuncitem.nodeid}: {e}")


@pytest.fixture
def broker(tmp_path_factory: pytest.TempPathFactory) -> Generator[Broker, None, None]:
    """A real MQTT broker of its own (tests/mqttbroker.py), stopped by its process id."""
    why = mqttbroker.available()
    if why:
        pytest.skip(why)
    b = Broker(tmp_path_factory.mktemp("broker")).start()
    try:
        yield b
    finally:
        b.stop()
