"""An in-process MLLP listener for the HL7 tests: receives frames on 127.0.0.1, checks every
message with hl7apy (bedside_host.hl7.messages.validate) and answers an ACK (AA, or AE/AR,
or nothing) built with python-hl7."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass

import hl7
from bedside_host.hl7 import messages
from bedside_host.hl7.mllp import FrameReader, frame


@dataclass
class Got:
    text: str
    problems: list[str]
    answered: str


class MllpListener:
    def __init__(self, mode: str = "AA") -> None:
        self.mode = mode  # AA, AE, AR, silent (no ACK)
        self.got: list[Got] = []
        self.lock = threading.Lock()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self.url = f"mllp://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        reader = FrameReader()
        conn.settimeout(0.2)
        with conn:
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                for text in reader.feed(data):
                    problems = messages.validate(text)
                    mode = self.mode
                    with self.lock:
                        self.got.append(Got(text, problems, mode))
                    if mode == "silent":
                        continue
                    code = "AE" if problems and mode == "AA" else mode
                    ack = str(hl7.parse(text.replace("\n", "\r").strip("\r")).create_ack(code))
                    if code != "AA":
                        ack = ack.rstrip("\r") + "\rERR|||207^Application internal error^HL70357|E"
                    conn.sendall(frame(ack))

    def texts(self, kind: str | None = None) -> list[str]:
        with self.lock:
            return [g.text for g in self.got if kind is None or kind in g.text.split("\r")[0]]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
