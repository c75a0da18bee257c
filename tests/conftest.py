"""pytest glue: a tests/mp test that calls mputil.skip() is reported as SKIPPED, not passed."""

from __future__ import annotations

from collections.abc import Generator

import pytest
from mputil import Skipped


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    try:
        return (yield)
    except Skipped as e:
        pytest.skip(f"{pyfuncitem.nodeid}: {e}")
