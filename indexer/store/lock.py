"""Single-opener guard for embedded stores: one process (one open root) per folder.

The lock is an OS file lock (``filelock``), released by the kernel when its holder dies, so a SIGKILLed
ingest never leaves a stale lock.  Who holds it is written next to it so the refusal can say so.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from filelock import FileLock, Timeout

from .base import StoreLockedError

LOCK_FILE, OWNER_FILE = ".moesearch.lock", ".moesearch-owner.json"


class FolderLock:
    def __init__(self, folder: Path, what: str = "index"):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.folder / LOCK_FILE))
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise StoreLockedError(self._refusal(what)) from None
        owner = {"pid": os.getpid(), "since": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)[:200]}
        try:
            (self.folder / OWNER_FILE).write_text(json.dumps(owner))
        except BaseException:  # e.g. a full disk: no lock left behind, or the next try would refuse as "in use"
            self._lock.release()
            raise

    def _refusal(self, what: str) -> str:
        holder = ""
        try:
            owner = json.loads((self.folder / OWNER_FILE).read_text())
            holder = f" (held by process {owner['pid']} since {owner['since']}: {owner['command']!r})"
        except (OSError, ValueError, KeyError):
            pass
        return (f"the embedded {what} at {self.folder} is already open in another process{holder}. "
                "Only one process can use it at a time: stop the app (or the other command) first, ingest through "
                "the app instead, or run a Qdrant server and set QDRANT_URL so several processes can share the index.")

    def release(self) -> None:
        if self._lock.is_locked:
            try:
                (self.folder / OWNER_FILE).unlink(missing_ok=True)
            except OSError:
                pass
            self._lock.release()
