"""A station with a few hundred chairs opens more than 1024 descriptors (pyserial keeps two
pipes per port): the link must read ports whose descriptor is above select()'s limit."""

from __future__ import annotations

import os
import resource
import tty
from collections.abc import Iterator

import pytest
from bedside_host.link.transport import PortGone, Transport


@pytest.fixture
def high_fds() -> Iterator[None]:
    """Occupy the descriptors below 1100 so that the next ones opened are above 1023."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1400
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            pytest.skip(f"the descriptor limit ({hard}) is below {want}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    held: list[int] = []
    try:
        while True:
            fd = os.open(os.devnull, os.O_RDONLY)
            held.append(fd)
            if fd >= 1100:
                break
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_link_reads_a_port_above_descriptor_1023(high_fds: None) -> None:
    """REQ-STA-14: the link transport reads and writes a device port whose descriptors are
    above 1023 (a
    station with ~200 chairs and more) instead of failing with "filedescriptor out of range in
    select()"; a device that goes away is still reported as gone."""
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    t = Transport(path)
    try:
        t.open()
        assert t._fd is not None and t._fd > 1023
        assert t.read(0.05) == b""
        os.write(master, b'{"v": 2}\n')
        got = b""
        for _ in range(20):
            got += t.read(0.05)
            if got.endswith(b"\n"):
                break
        assert got == b'{"v": 2}\n'
        t.write(b'{"cmd": "hello"}\n')  # pyserial's own write would select() too
        assert os.read(master, 100) == b'{"cmd": "hello"}\n'
        os.close(slave)
        os.close(master)
        master = slave = -1
        with pytest.raises(PortGone):
            for _ in range(20):
                t.read(0.05)
    finally:
        t.close()
        for fd in (master, slave):
            if fd >= 0:
                os.close(fd)
