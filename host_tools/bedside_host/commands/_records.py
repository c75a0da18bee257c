"""Shared by the record-file commands (export, report): open the store, find the session."""

from __future__ import annotations

import argparse
from pathlib import Path

from bedside_host.store import Session, Store, StoreError


class UsageError(Exception):
    """A missing file, an unknown session, a bad option: one line on stderr, exit status 2."""


def session_id(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a session number: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"session numbers start at 1: {text!r}")
    return v


def open_store(path: Path) -> Store:
    """The existing record file (never creates one)."""
    try:
        return Store(path, create=False)
    except StoreError as e:
        raise UsageError(str(e)) from None


def find_session(store: Store, sid: int | None) -> Session | None:
    if sid is None:
        return None
    try:
        return store.session(sid)
    except StoreError:
        ids = [s.id for s in store.sessions()]
        known = f"sessions {ids[0]}-{ids[-1]}" if ids else "no sessions"
        raise UsageError(f"no session {sid} in {store.path} ({known})") from None
