"""The station's web interface: a FastAPI app serving the page, a JSON API and WebSocket push.

``create_app(hub)``: ``GET /`` the page (plain HTML/JS/CSS from ``static/``, no CDN, no build
step); ``GET /api/state`` every tile, the alarm list and the audio state; ``GET
/api/chairs/{id}/history?minutes=N`` trends and alarm history from the record file; ``POST
/api/audio/pause`` (the station's own 120 s pause), ``/api/audio/off`` (named user, audited),
``/api/audio/on``; ``GET /api/audit``; ``GET /api/status`` (record file, MQTT, HL7, and the
problems in words); ``WS /ws``: a snapshot, then frames with the tiles that
changed (coalesced per chair per frame), the alarm list and the audio state when they changed,
and a ``tick`` every second so the page can tell a silent station from a quiet one.

The station never sends anything to a bedside device from here: no acknowledge, no silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from bedside_host.station import history
from bedside_host.station.hosts import HostCheck
from bedside_host.station.model import StationModel, valid_user
from bedside_host.station.sessions import BadForm, SessionDesk, parse, result_json

STATIC = Path(__file__).resolve().parent / "static"
FRAME_S = 0.02  # changes within one frame go out together (a tile once per frame)
TICK_S = 1.0  # stale detection and the keep-alive tick
SEND_TIMEOUT_S = 5.0  # a browser that does not take a frame this long is dropped
HISTORY_MAX_MIN = 24 * 60
# The only device commands the station may send (Hub.command, the session forms). Never ack,
# reset, audio_off, nibp, set or selftest: the station does not acknowledge, silence or change
# a bedside. "session" carries the infusion-session steps of the forms (docs/station.md);
# get_session and get_settings are read-only (the session services read the clinic minimums).
STATION_COMMANDS: frozenset[str] = frozenset({"get_session", "get_settings", "session"})
COMMAND_TIMEOUT_S = 3.0

# chair -> submit(cmd, fields, timeout) -> Future of the reply (LinkThread.submit)
Commander = Callable[[str, dict[str, Any], float], "Future[dict[str, Any]]"]


class Client:
    """One WebSocket: what changed since its last send, merged (a slow browser gets the
    latest state, never a backlog)."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.tiles: dict[str, dict[str, Any]] = {}
        self.removed: set[str] = set()
        self.alarms: list[dict[str, Any]] | None = None
        self.audio: dict[str, Any] | None = None
        self.tick: float | None = None
        self.wake = asyncio.Event()
        self.sent = 0

    def merge(self, frame: dict[str, Any]) -> None:
        for t in frame.get("tiles", ()):
            self.tiles[t["id"]] = t
            self.removed.discard(t["id"])
        for c in frame.get("removed", ()):
            self.tiles.pop(c, None)
            self.removed.add(c)
        if "alarms" in frame:
            self.alarms = frame["alarms"]
        if "audio" in frame:
            self.audio = frame["audio"]
        self.tick = frame["t"]
        self.wake.set()

    def take(self) -> str | None:
        if not (self.tiles or self.removed or self.alarms is not None or self.audio is not None):
            if self.tick is None:
                return None
            out: dict[str, Any] = {"type": "tick", "t": self.tick}
        else:
            out = {"type": "frame", "t": self.tick, "tiles": list(self.tiles.values())}
            if self.removed:
                out["removed"] = sorted(self.removed)
            if self.alarms is not None:
                out["alarms"] = self.alarms
            if self.audio is not None:
                out["audio"] = self.audio
        self.tiles, self.removed, self.alarms, self.audio, self.tick = {}, set(), None, None, None
        return json.dumps(out, separators=(",", ":"))


class Hub:
    """The model plus the browsers watching it; runs in the station's event loop."""

    def __init__(self, model: StationModel, db: Path | None, name: str = "") -> None:
        self.model = model
        self.db = db
        self.name = name
        self.clients: set[Client] = set()
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.frames = 0
        self.commanders: dict[str, Commander] = {}
        self.sessions: SessionDesk | None = None  # the session forms (chairs on ports)
        # name -> a callable giving that part's state for GET /api/status (store, mqtt, hl7)
        self.status: dict[str, Callable[[], dict[str, Any]]] = {}
        self.allowed: frozenset[str] = STATION_COMMANDS
        model.listeners.append(self._changed.set)

    async def command(
        self, chair: str, cmd: str, fields: dict[str, Any], timeout: float = COMMAND_TIMEOUT_S
    ) -> dict[str, Any]:
        """Send one allowed command to a chair's device through its link thread and await the
        reply. PermissionError for a command the station may not send, KeyError for a chair
        without a link here, the link's LinkProblem (down, timeout, refused) otherwise."""
        if cmd not in self.allowed:
            raise PermissionError(f"the station does not send {cmd!r} to a bedside")
        submit = self.commanders[chair]
        return await asyncio.wrap_future(submit(cmd, fields, timeout))

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._broadcast()),
            asyncio.create_task(self._ticker()),
        ]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []

    async def _broadcast(self) -> None:
        while True:
            await self._changed.wait()
            await asyncio.sleep(FRAME_S)  # let the rest of this frame's changes arrive
            self._changed.clear()
            self.publish()

    def publish(self) -> None:
        """Send what changed to every browser (also called directly by tests and the bench)."""
        chairs, alarms, audio = self.model.take_dirty()
        if not (chairs or alarms or audio):
            return
        frame = self.model.frame(chairs, alarms=alarms, audio=audio)
        self.frames += 1
        for c in self.clients:
            c.merge(frame)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self.model.tick()
            self.publish()
            t = self.model.clock()
            for c in self.clients:
                if c.tick is None:
                    c.tick = t
                    c.wake.set()

    async def serve(self, ws: WebSocket) -> None:
        origin = ws.headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != ws.headers.get("host"):
            # another site's page in the nurse's browser must not read the chairs
            await ws.close(code=1008)
            return
        await ws.accept()
        client = Client(ws)
        self.publish()  # older changes go to the existing browsers, not into the snapshot twice
        snap = json.dumps(self.model.snapshot(), separators=(",", ":"))
        self.clients.add(client)  # changes from now on are merged for it, sent after the snapshot
        reader = asyncio.create_task(self._read(ws))
        try:
            await ws.send_text(snap)
            while not reader.done():
                waiter = asyncio.create_task(client.wake.wait())
                done, _ = await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if waiter not in done:
                    waiter.cancel()
                    break
                client.wake.clear()
                text = client.take()
                if text is not None:
                    await asyncio.wait_for(ws.send_text(text), SEND_TIMEOUT_S)
                    client.sent += 1
        except Exception:  # a browser gone or too slow: drop it, never the station
            pass
        finally:
            self.clients.discard(client)
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader

    async def _read(self, ws: WebSocket) -> None:
        """The page sends nothing that matters; reading notices the close."""
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while True:
                await ws.receive_text()

    async def audit(self, user: str, action: str, detail: Any = None) -> None:
        if self.db is None:
            raise HTTPException(503, "no record file: the station cannot audit this")
        try:
            await asyncio.to_thread(history.audit, self.db, user, action, detail, self.name)
        except sqlite3.Error as e:
            raise HTTPException(
                503, f"cannot write the audit record ({e}): nothing changed"
            ) from e


class PauseBody(BaseModel):
    user: str = ""


class OffBody(BaseModel):
    user: str = ""
    reason: str = ""


def create_app(hub: Hub, allowed_hosts: Iterable[str] | None = None) -> FastAPI:
    """The app; with `allowed_hosts` (``hosts.station_hosts``: `bedside station` always gives
    it) a request naming another host in its Host header is refused (DNS rebinding)."""
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()

    app = FastAPI(
        title="Bedside central station", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.hub = hub
    if allowed_hosts is not None:
        app.add_middleware(HostCheck, allowed=allowed_hosts)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    model = hub.model

    @app.get("/")
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/api/state")
    async def state() -> dict[str, Any]:
        return model.snapshot()

    @app.get("/api/chairs/{chair_id:path}/history")  # MQTT chair ids hold a "/"
    async def chair_history(
        chair_id: str, minutes: float = Query(60.0, gt=0, le=HISTORY_MAX_MIN)
    ) -> dict[str, Any]:
        ch = model.chairs.get(chair_id)
        if ch is None:
            raise HTTPException(404, f"no chair {chair_id!r}")
        if hub.db is None or ch.device is None:
            raise HTTPException(404, f"no record of chair {chair_id!r} at this station")
        out = await asyncio.to_thread(history.chair_history, hub.db, ch.device, minutes)
        out["chair"] = chair_id
        out["label"] = ch.label
        return out

    @app.post("/api/audio/pause")
    async def audio_pause(body: PauseBody) -> dict[str, Any]:
        until = model.pause_audio(body.user)
        if hub.db is not None:
            await hub.audit(body.user.strip(), "audio_pause", {"until": until})
        return model.audio_state()

    @app.post("/api/audio/off")
    async def audio_off(body: OffBody) -> dict[str, Any]:
        try:
            user = valid_user(body.user)
        except ValueError as e:
            raise HTTPException(400, f"station audio off: {e}") from None
        await hub.audit(user, "audio_off", body.reason.strip()[:120] or None)
        model.audio_off(user, body.reason)
        return model.audio_state()

    @app.post("/api/audio/on")
    async def audio_on(body: PauseBody) -> dict[str, Any]:
        try:
            user = valid_user(body.user)
        except ValueError as e:
            raise HTTPException(400, f"station audio on: {e}") from None
        await hub.audit(user, "audio_on")
        model.audio_on(user)
        return model.audio_state()

    @app.get("/api/audit")
    async def audit_trail(limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
        if hub.db is None:
            return []
        return await asyncio.to_thread(history.audit_rows, hub.db, limit)

    def session_desk(chair_id: str) -> SessionDesk:
        if chair_id not in model.chairs:
            raise HTTPException(404, f"no chair {chair_id!r}")
        desk = hub.sessions
        if desk is None or chair_id not in desk.links:
            raise HTTPException(
                409,
                f"chair {chair_id!r} has no command path from this station (a chair from MQTT):"
                " take the session steps at its bedside or its PC",
            )
        return desk

    @app.get("/api/session/forms")
    async def session_forms() -> dict[str, Any]:
        from bedside_host.station.sessions import forms

        return forms()

    @app.get("/api/chairs/{chair_id:path}/session")
    async def session_show(chair_id: str) -> dict[str, Any]:
        from bedside_host.link.messages import LinkProblem

        desk = session_desk(chair_id)
        try:
            return await desk.show(chair_id)
        except (LinkProblem, TimeoutError, ConnectionError) as e:
            raise HTTPException(503, f"no answer from the bedside device: {e}") from None

    @app.post("/api/chairs/{chair_id:path}/session/{op}")
    async def session_step(chair_id: str, op: str, request: Request) -> JSONResponse:
        from bedside_host.link.messages import LinkProblem
        from bedside_host.session import InvalidInput

        try:
            body = await request.json()
        except ValueError:
            raise HTTPException(400, "the form must be a JSON object") from None
        try:
            form = parse(op, body)
        except BadForm as e:
            raise HTTPException(400, f"{e} (nothing sent)") from None
        try:
            form.by = valid_user(form.by)
        except ValueError as e:
            raise HTTPException(400, f"{op}: the operator's name: {e} (nothing sent)") from None
        desk = session_desk(chair_id)
        try:
            res = await desk.step(chair_id, op, form)
        except InvalidInput as e:
            raise HTTPException(400, f"{op}: {e} (nothing sent, nothing recorded)") from None
        except PermissionError as e:
            raise HTTPException(403, str(e)) from None
        except (LinkProblem, TimeoutError, ConnectionError) as e:
            raise HTTPException(
                503, f"{op}: no answer from the bedside device ({e}): recorded as no answer"
            ) from None
        return JSONResponse(result_json(res), status_code=200 if res.ok else 409)

    @app.get("/api/status")
    async def system_status() -> dict[str, Any]:
        from bedside_host.station.feeds import problems

        out: dict[str, Any] = {"station": hub.name, "chairs": len(model.chairs)}
        for name, part in hub.status.items():
            out[name] = part()
        out["problems"] = problems(out)
        return out

    @app.get("/api/time")
    async def server_time() -> dict[str, float]:
        return {"t": time.time()}

    @app.websocket("/ws")
    async def ws_endpoint(ws: WebSocket) -> None:
        await hub.serve(ws)

    @app.exception_handler(HTTPException)
    async def http_error(request: Any, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    return app
