"""The synced folders' state: an SQLite file, ``DATA_DIR/sync/state.sqlite`` — the folders, and per file its size,
mtime, sha256, doc_id and outcome (``sync.py`` keeps it in step with the index; see its docstring for why a kill -9
loses nothing).  ``FolderState`` is what the Status page shows; readers in other processes open it read-only."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_FILE = Path("sync") / "state.sqlite"
MAX_FAILURES_SHOWN = 50  # failed files listed per folder in its state
INDEXED, DUPLICATE, FAILED, SKIPPED = "indexed", "duplicate", "failed", "skipped"
SCHEMA = """
CREATE TABLE IF NOT EXISTS folders (path TEXT PRIMARY KEY, added_at TEXT NOT NULL, last_sync TEXT,
    last_error TEXT, last_report TEXT);
CREATE TABLE IF NOT EXISTS files (folder TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL, doc_id TEXT, status TEXT NOT NULL, reason TEXT NOT NULL,
    PRIMARY KEY (folder, path));
"""


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class SyncReport:
    """What one sync of one folder did."""

    folder: str
    ingested: int = 0
    moved: int = 0
    deleted: int = 0
    failed: int = 0
    unchanged: int = 0
    seconds: float = 0.0
    error: str | None = None  # the sync stopped (e.g. the folder vanished, the store failed)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FolderState:
    """A synced folder as the Status page shows it."""

    path: str
    added_at: str
    last_sync: str | None
    last_error: str | None
    files: int  # files seen in the folder (all outcomes)
    indexed: int  # whose content is in the index under this path
    failed: int
    skipped: int
    failures: tuple[tuple[str, str], ...] = field(default=())  # (path, reason), at most MAX_FAILURES_SHOWN
    last_report: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Row:
    size: int
    mtime_ns: int
    sha256: str
    doc_id: str | None
    status: str


class SyncState:
    """The folders and their files' last known state (SQLite; one connection per operation, so any thread)."""

    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / STATE_FILE

    @contextmanager
    def _db(self, read_only: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection (a transaction: committed on success); ``read_only`` for readers in other processes (the
        Status page), which must not create the file or need a writable disk."""
        if read_only:
            db = sqlite3.connect(f"{self.path.absolute().as_uri()}?mode=ro", uri=True, timeout=30)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30)
        try:
            if not read_only:
                db.executescript(SCHEMA)
            with db:
                yield db
        finally:
            db.close()

    def folders(self) -> list[str]:
        with self._db() as db:
            return [r[0] for r in db.execute("SELECT path FROM folders ORDER BY path")]

    def add(self, folder: str) -> bool:
        with self._db() as db:
            return db.execute("INSERT OR IGNORE INTO folders (path, added_at) VALUES (?, ?)",
                              (folder, _now())).rowcount > 0

    def remove(self, folder: str) -> list[str]:
        """Forget a folder; returns the doc_ids its files had in the index."""
        with self._db() as db:
            docs = [r[0] for r in db.execute("SELECT doc_id FROM files WHERE folder = ? AND status = ?",
                                             (folder, INDEXED))]
            db.execute("DELETE FROM files WHERE folder = ?", (folder,))
            db.execute("DELETE FROM folders WHERE path = ?", (folder,))
            return docs

    def files(self, folder: str) -> dict[str, _Row]:
        with self._db() as db:
            return {r[0]: _Row(*r[1:]) for r in db.execute(
                "SELECT path, size, mtime_ns, sha256, doc_id, status FROM files WHERE folder = ?", (folder,))}

    def put(self, folder: str, path: str, size: int, mtime_ns: int, digest: str, doc_id: str | None, status: str,
            reason: str = "") -> None:
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (folder, path, size, mtime_ns, digest, doc_id, status, reason))

    def reason(self, folder: str, path: str) -> str:
        """Why a file failed or was skipped ("" if unknown)."""
        with self._db() as db:
            found = db.execute("SELECT reason FROM files WHERE folder = ? AND path = ?", (folder, path)).fetchone()
        return found[0] if found else ""

    def drop(self, folder: str, path: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM files WHERE folder = ? AND path = ?", (folder, path))

    def finished(self, folder: str, report: SyncReport) -> None:
        with self._db() as db:
            db.execute("UPDATE folders SET last_sync = ?, last_error = ?, last_report = ? WHERE path = ?",
                       (_now(), report.error, json.dumps(report.to_dict()), folder))

    def describe(self) -> list[FolderState]:
        out = []
        if not self.path.exists():
            return out
        with self._db(read_only=True) as db:
            for path, added, last, error, report in db.execute("SELECT * FROM folders ORDER BY path").fetchall():
                counts = dict(db.execute("SELECT status, COUNT(*) FROM files WHERE folder = ? GROUP BY status",
                                         (path,)).fetchall())
                failures = tuple(tuple(r) for r in db.execute(
                    "SELECT path, reason FROM files WHERE folder = ? AND status = ? ORDER BY path LIMIT ?",
                    (path, FAILED, MAX_FAILURES_SHOWN)))
                out.append(FolderState(path, added, last, error, sum(counts.values()),
                                       counts.get(INDEXED, 0), counts.get(FAILED, 0), counts.get(SKIPPED, 0),
                                       failures, json.loads(report) if report else None))
        return out
