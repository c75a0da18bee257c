"""The names the station answers to: a request whose Host header names another host is refused.

A web page from anywhere that the nurse's browser opens can make the browser send requests to the
station's address; with DNS rebinding such a page can even read the answers, since the browser
then takes the station for that page's own site. Checking the Host header closes that door: the
page's own name is not one of the station's names. ``station_hosts`` is the list (the loopback
names, the address the station is bound to, for an all-interfaces bind the machine's own names
and addresses, and what ``--allow-host`` adds); ``HostCheck`` is the ASGI middleware that holds
HTTP requests and WebSocket handshakes to it.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK = ("localhost", "127.0.0.1", "::1")
WILDCARDS = ("", "0.0.0.0", "::")


def host_of(header: str) -> str:
    """The host part of a Host header value, lower case: ``[::1]:8080`` -> ``::1``,
    ``Station.local:80`` -> ``station.local``; "" for an empty or malformed value."""
    h = header.strip().lower()
    if h.startswith("["):
        end = h.find("]")
        return h[1:end] if end > 0 else ""
    if h.count(":") == 1:
        h = h.split(":", 1)[0]
    elif ":" in h:
        return h  # a bare IPv6 address (not a valid Host header, but unambiguous)
    return h.rstrip(".")


def station_hosts(bind_host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """Every name the station answers to when bound to `bind_host`."""
    names = set(LOOPBACK)
    h = host_of(bind_host) if bind_host not in WILDCARDS else ""
    if h:
        names.add(h)
    else:  # all interfaces: the machine's own names and the addresses they resolve to
        for n in {socket.gethostname(), socket.getfqdn()}:
            if not n:
                continue
            names.add(n.lower())
            try:
                for *_, addr in socket.getaddrinfo(n, None):
                    names.add(str(addr[0]).lower())
            except OSError:
                pass
        for probe, family in (("192.0.2.1", socket.AF_INET), ("2001:db8::1", socket.AF_INET6)):
            # the address this PC reaches the network from (a UDP connect sends nothing)
            try:
                with socket.socket(family, socket.SOCK_DGRAM) as u:
                    u.connect((probe, 9))
                    names.add(str(u.getsockname()[0]).lower())
            except OSError:
                pass
    for e in extra:
        e = host_of(e)
        if e:
            names.add(e)
    return frozenset(names)


class HostCheck:
    """ASGI middleware: an HTTP request or WebSocket handshake whose Host header is not one of
    `allowed` gets 400 (HTTP) or a refused handshake (WebSocket); the rest pass through."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = frozenset(a.lower() for a in allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = ""
        for k, v in scope.get("headers") or ():
            if k == b"host":
                header = v.decode("latin-1")
                break
        if host_of(header) in self.allowed:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = (
            f"this station does not answer to the host {header!r}; start it with"
            " --allow-host NAME to add a name it is reached by\n"
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
