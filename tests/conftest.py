"""pytest glue: a tests/mp test that calls mputil.skip() is reported as SKIPPED, not passed."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Generator

import pytest
from mputil import Skipped

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
