"""A real MQTT broker for the tests: Debian's Mosquitto (tools/ensure_debs.sh installs it), or
the pure-Python ``amqtt`` broker when Mosquitto cannot be had. Started on a free port on
127.0.0.1 from a temporary config, stopped (or killed) by its process id, restartable on the
same port with the same persistence file."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# BEDSIDE_TEST_BROKER=amqtt runs the tests on the fallback broker even where Mosquitto is
# installed; BEDSIDE_AMQTT_DIR is where tools/ensure_broker.sh put it (.venv/amqtt-broker).
FORCE_AMQTT = os.environ.get("BEDSIDE_TEST_BROKER") == "amqtt"
MOSQUITTO = (
    None
    if FORCE_AMQTT
    else shutil.which("mosquitto")
    or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
)
AMQTT_DIR = Path(os.environ.get("BEDSIDE_AMQTT_DIR", ROOT / ".venv" / "amqtt-broker"))


# runs amqtt's broker from its own directory (its dependencies stay out of the app's venv)
_AMQTT_MAIN = (
    "import sys; sys.path.insert(0, sys.argv[1]); from amqtt.scripts.broker_script import main;"
    " sys.argv = ['amqtt', '-c', sys.argv[2]]; main()"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _amqtt() -> str | None:
    if (AMQTT_DIR / "amqtt" / "__init__.py").exists():
        return str(AMQTT_DIR)
    return None


def available() -> str | None:
    """Why no broker can be started, or None."""
    if MOSQUITTO or _amqtt():
        return None
    return "no MQTT broker: install Debian's mosquitto (tools/ensure_debs.sh) or amqtt"


class Broker:
    def __init__(self, tmp: Path, port: int | None = None, conf: str | None = None) -> None:
        """``conf``: a whole Mosquitto configuration to run instead of the test default."""
        self.dir = tmp
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.kind = "mosquitto" if MOSQUITTO else "amqtt"
        self.persistent = self.kind == "mosquitto"  # sessions survive a restart
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "broker.log"
        self.conf = conf

    def _command(self) -> list[str]:
        if self.conf is not None:
            assert MOSQUITTO is not None
            path = self.dir / "given.conf"
            path.write_text(self.conf)
            return [MOSQUITTO, "-c", str(path)]
        if self.kind == "mosquitto":
            conf = self.dir / "mosquitto.conf"
            lines = [
                f"listener {self.port} 127.0.0.1",
                "allow_anonymous true",
                "persistence true",
                f"persistence_location {self.dir}/",
                "autosave_interval 1",
                "max_queued_messages 100000",
                "max_inflight_messages 0",
                "set_tcp_nodelay true",
                f"log_dest file {self.log}",
                "log_type error",
                "log_type warning",
                "log_type notice",
            ]
            if os.geteuid() == 0:
                lines.append("user root")  # its files are in the test's temporary directory
            conf.write_text("\n".join(lines) + "\n")
            assert MOSQUITTO is not None
            return [MOSQUITTO, "-c", str(conf)]
        conf = self.dir / "amqtt.yaml"
        conf.write_text(
            "listeners:\n  default:\n    type: tcp\n"
            f"    bind: 127.0.0.1:{self.port}\n"
            "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
            "    allow_anonymous: true\n"
        )
        assert _amqtt() is not None
        return [sys.executable, "-c", _AMQTT_MAIN, str(AMQTT_DIR), str(conf)]

    def start(self, timeout: float = 10.0) -> Broker:
        out = open(self.dir / "broker.out", "ab")
        self.proc = subprocess.Popen(self._command(), stdout=out, stderr=subprocess.STDOUT)
        out.close()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited: {self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"broker did not listen on {self.port}: {self.output()}")

    def output(self) -> str:
        text = ""
        for f in (self.dir / "broker.out", self.log):
            if f.exists():
                text += f.read_text(errors="replace")[-2000:]
        return text

    def wait_saved(self, after: float, timeout: float = 10.0) -> bool:
        """Wait until Mosquitto has saved its state (sessions, subscriptions) to its
        persistence file after wall time ``after`` (it autosaves every second here)."""
        db = self.dir / "mosquitto.db"
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if db.exists() and db.stat().st_mtime > after:
                return True
            time.sleep(0.05)
        return False

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (a clean restart) or SIGKILL (a crash), by process id; reaped."""
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        os.kill(p.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(10)

    def restart(self, kill: bool = True, down_s: float = 0.0) -> None:
        self.stop(kill)
        time.sleep(down_s)
        self.start()


def rewrite(conf: str, values: dict[str, str], extra: list[str] | None = None) -> str:
    """A repository configuration with the value of each ``key`` line replaced (paths and
    ports of the test); every other line is kept as written."""
    out = []
    for line in conf.splitlines():
        key = line.split(" ", 1)[0]
        out.append(f"{key} {values[key]}" if key in values and not line.startswith("#") else line)
    if os.geteuid() == 0:
        out.append("user root")  # the test's files are root's
    return "\n".join(out + (extra or [])) + "\n"
