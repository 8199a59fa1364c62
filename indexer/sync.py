"""Synced folders: an admin registers a server folder (within MOESEARCH_INGEST_ROOTS) and the index follows it.

New and changed files are ingested, deleted files are removed from the index, and a renamed or moved file (same
content hash, which is the doc_id) has its document moved to the new path without embedding it again.  Changes are
seen on file-system events where the platform has them (inotify, through ``watchdog``; a burst of events is one
sync after MOESEARCH_SYNC_DEBOUNCE_S) and by a full rescan every MOESEARCH_SYNC_RESCAN_S (the safety net: missed
events, network mounts) and at start (what changed while the server was down).

The state (``sync_state.py``, ``DATA_DIR/sync/state.sqlite``: the folders, and per file its size, mtime, sha256,
doc_id and outcome) is committed after each change reached the index.  A kill -9 at any point leaves a state
that is at most one step behind the index, and every step is idempotent: a file ingested again is "unchanged",
a move is a payload update, a delete of a deleted document removes nothing — so a restart loses nothing and
indexes nothing twice.  A file that failed is recorded with its size, mtime and hash and tried again only when
one of them changes; it never stops the others.

Only the process that owns the index runs a ``Syncer`` (the app's server or ``python -m api``); any process may
read the folders' states (``synced_folders``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from embedder.settings import sha256

from .files import Source
from .results import IndexerError
from .settings import IndexerSettings
from .sync_state import DUPLICATE, FAILED, INDEXED, SKIPPED, FolderState, SyncReport, SyncState

log = logging.getLogger(__name__)
BATCH_FILES = 16  # files ingested per pipeline call; the state is committed after each batch


def server_path(text: str | os.PathLike) -> Path:
    """``text`` as an absolute path with links, '..' and '~' resolved; ``ValueError`` if it cannot be one."""
    try:
        return Path(text).expanduser().resolve()
    except (RuntimeError, OSError, ValueError) as exc:  # '~nobody', a NUL byte, a loop of links
        raise ValueError(f"{str(text)!r} is not a usable path on the server ({exc})") from None


def ingest_roots(settings: IndexerSettings) -> list[Path]:
    """The server folders admins may ingest and sync (MOESEARCH_INGEST_ROOTS), resolved."""
    return [Path(r).expanduser().resolve() for r in settings.ingest_roots.split(os.pathsep) if r.strip()]


def allowed_folder(settings: IndexerSettings, folder: str | os.PathLike) -> Path:
    """``folder`` resolved (links and '..' first), if it is a folder within MOESEARCH_INGEST_ROOTS; else
    ``ValueError`` naming the cause."""
    roots = ingest_roots(settings)
    if not roots:
        raise ValueError("server folders are off: set MOESEARCH_INGEST_ROOTS to the folders admins may ingest from")
    path = server_path(folder)
    if not any(path.is_relative_to(root) for root in roots):
        raise ValueError(f"{path} is outside the folders allowed by MOESEARCH_INGEST_ROOTS "
                         f"({os.pathsep.join(map(str, roots))})")
    if not path.exists():
        raise ValueError(f"there is no file or folder {str(path)!r} on the server")
    return path


def synced_folders(settings: IndexerSettings) -> list[FolderState]:
    """Every synced folder with its last sync, counts and failures (readable from any process)."""
    return SyncState(settings.data_dir).describe()


_RUNNING: dict[str, Syncer] = {}  # data folder -> the started Syncer of this process (the owner of the index)


def _key(settings: IndexerSettings) -> str:
    return str(settings.data_dir.resolve())


def add_synced_folder(settings: IndexerSettings, folder: str | os.PathLike) -> FolderState:
    """Sync ``folder`` (within MOESEARCH_INGEST_ROOTS): through this process's running ``Syncer`` (the app's pages),
    else recorded in the state for the owner to follow when it starts.  ``ValueError`` names what is wrong."""
    syncer = _RUNNING.get(_key(settings))
    if syncer is not None:
        return syncer.add(folder)
    state = SyncState(settings.data_dir)
    path = _register(state, settings, folder)
    return next(f for f in state.describe() if f.path == path)


def remove_synced_folder(settings: IndexerSettings, folder: str | os.PathLike) -> None:
    """Stop syncing ``folder`` (its documents stay; ``Syncer.remove(purge=True)`` deletes them)."""
    syncer = _RUNNING.get(_key(settings))
    if syncer is not None:
        syncer.remove(folder)
        return
    state, path = SyncState(settings.data_dir), str(server_path(folder))
    if path not in state.folders():
        raise IndexerError(f"{path} is not a synced folder")
    state.remove(path)


def _register(state: SyncState, settings: IndexerSettings, folder: str | os.PathLike) -> str:
    path = allowed_folder(settings, folder)
    if not path.is_dir():
        raise ValueError(f"{path} is a file; a synced folder must be a folder")
    known = state.folders()
    if str(path) not in known and len(known) >= settings.sync_max_folders:
        raise ValueError(f"{len(known)} folders are synced already (MOESEARCH_SYNC_MAX_FOLDERS)")
    state.add(str(path))
    return str(path)


def _walk(folder: Path, exclude: Path) -> dict[str, os.stat_result]:
    """Regular files under ``folder`` (hidden entries ignored, as an ingest of the folder does; nothing under
    ``exclude``, the data folder, should it be inside) and their stats."""
    found = {}
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(".") and (Path(root) / d).resolve() != exclude]
        for name in files:
            if name.startswith("."):
                continue
            path = Path(root) / name
            try:
                st = path.stat()
            except OSError:  # vanished meanwhile: the next event or rescan sees it
                continue
            if path.is_file():
                found[str(path.absolute())] = st
    return found


class Syncer:
    """Keeps the registered folders and the index in step (one per owning process; see the module doc)."""

    def __init__(self, pipeline, settings: IndexerSettings | None = None, background: bool = False):
        self.pipeline = pipeline
        self.settings = settings or pipeline.settings
        self.state = SyncState(self.settings.data_dir)
        self.background = background
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._dirty: set[str] = set()
        self._dirty_lock = threading.Lock()
        self._busy = threading.Lock()  # one sync at a time
        self._thread: threading.Thread | None = None
        self._observer = None
        self._watches: dict[str, object] = {}
        self.syncs = 0  # completed folder syncs (tests wait on it)

    # --- registration --------------------------------------------------------------------------------------
    def add(self, folder: str | os.PathLike) -> FolderState:
        path = _register(self.state, self.settings, folder)
        self._watch(path)
        self.request(path)
        return self.folder(path)

    def remove(self, folder: str | os.PathLike, purge: bool = False) -> list[str]:
        """Stop syncing a folder; with ``purge`` also delete its documents from the index (returns their doc_ids)."""
        path = str(server_path(folder))
        if path not in self.state.folders():
            raise IndexerError(f"{path} is not a synced folder")
        with self._busy:
            self._unwatch(path)
            docs = self.state.remove(path)
            removed = [d for doc_id in docs for d in self.pipeline.delete(doc_id)] if purge else []
        return removed

    def folders(self) -> list[FolderState]:
        return self.state.describe()

    def folder(self, path: str) -> FolderState:
        for state in self.state.describe():
            if state.path == path:
                return state
        raise IndexerError(f"{path} is not a synced folder")

    # --- the thread ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Sync every folder now, then on events and rescans, in a daemon thread."""
        if self._thread is not None:
            return
        if self.settings.sync_watch:
            try:
                from watchdog.observers import Observer

                self._observer = Observer()
                self._observer.daemon = True
                self._observer.start()
            except (ImportError, OSError) as exc:
                log.warning("file-system events unavailable (%s): synced folders are rescanned every %s s", exc,
                            self.settings.sync_rescan_s)
                self._observer = None
        for folder in self.state.folders():
            self._watch(folder)
        self._thread = threading.Thread(target=self._loop, name="moesearch-sync", daemon=True)
        self._thread.start()
        _RUNNING[_key(self.settings)] = self

    def stop(self) -> None:
        if _RUNNING.get(_key(self.settings)) is self:
            del _RUNNING[_key(self.settings)]
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()

    def request(self, folder: str | None = None) -> None:
        """Ask for a sync of ``folder`` (all folders if None) by the thread, soon."""
        with self._dirty_lock:
            self._dirty.update([folder] if folder else self.state.folders())
        self._wake.set()

    def _watch(self, folder: str) -> None:
        if self._observer is None or folder in self._watches:
            return
        from watchdog.events import FileSystemEventHandler

        syncer = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event) -> None:
                if event.event_type in ("opened", "closed_no_write"):
                    return
                with syncer._dirty_lock:
                    syncer._dirty.add(folder)
                syncer._wake.set()

        try:
            self._watches[folder] = self._observer.schedule(Handler(), folder, recursive=True)
        except OSError as exc:  # e.g. inotify watch limit: the rescans still cover it
            log.warning("cannot watch %s (%s); it is rescanned every %s s", folder, exc, self.settings.sync_rescan_s)

    def _unwatch(self, folder: str) -> None:
        watch = self._watches.pop(folder, None)
        if watch is not None and self._observer is not None:
            self._observer.unschedule(watch)

    def _loop(self) -> None:
        self.request()
        rescan = self.settings.sync_rescan_s
        next_rescan = time.monotonic() + rescan if rescan else None
        while not self._stop.is_set():
            timeout = None if next_rescan is None else max(0.0, next_rescan - time.monotonic())
            self._wake.wait(timeout)
            if self._stop.is_set():
                break
            if self._wake.is_set() and self.settings.sync_debounce_s:
                self._stop.wait(self.settings.sync_debounce_s)  # let a burst of events settle
            self._wake.clear()
            if next_rescan is not None and time.monotonic() >= next_rescan:
                self.request()
                self._wake.clear()
                next_rescan = time.monotonic() + rescan
            with self._dirty_lock:
                folders, self._dirty = sorted(self._dirty), set()
            for folder in folders:
                if self._stop.is_set():
                    break
                self.sync(folder)

    # --- one sync -------------------------------------------------------------------------------------------
    def sync(self, folder: str) -> SyncReport:
        """Bring the index in step with ``folder`` now (in this thread); the outcome is kept in the state."""
        with self._busy:
            if folder not in self.state.folders():
                return SyncReport(folder, error="not a synced folder")
            t0 = time.perf_counter()
            try:
                report = self._sync(folder)
            except Exception as exc:  # the store or the pipeline failed: recorded, retried at the next sync
                log.exception("sync of %s failed", folder)
                report = SyncReport(folder, error=f"{type(exc).__name__}: {exc}")
            report = SyncReport(**{**report.to_dict(), "seconds": round(time.perf_counter() - t0, 3)})
            self.state.finished(folder, report)
            self.syncs += 1
            return report

    def _sync(self, folder: str) -> SyncReport:
        if not Path(folder).is_dir():
            return SyncReport(folder, error=f"the folder {folder} is missing or not a folder; its documents stay "
                              "indexed until it is back or removed from sync")
        rows, present = self.state.files(folder), _walk(Path(folder), self.settings.data_dir.resolve())
        new: dict[str, str] = {}  # path -> sha256 of files to ingest (new or changed content)
        unchanged = 0
        for path, st in present.items():
            row = rows.get(path)
            if row is not None and (row.size, row.mtime_ns) == (st.st_size, st.st_mtime_ns):
                unchanged += 1
                continue
            try:
                digest = sha256(path)
            except OSError as exc:
                self.state.put(folder, path, st.st_size, st.st_mtime_ns, "", None, FAILED, f"cannot read: {exc}")
                continue
            if row is not None and row.sha256 == digest and row.status != FAILED:
                self.state.put(folder, path, st.st_size, st.st_mtime_ns, digest, row.doc_id, row.status)
                unchanged += 1
            elif row is not None and row.sha256 == digest:  # a failed file, touched but not changed
                self.state.put(folder, path, st.st_size, st.st_mtime_ns, digest, None, FAILED,
                               self.state.reason(folder, path))
                unchanged += 1
            else:
                new[path] = digest
        missing = [p for p in rows if p not in present]
        moved = self._moves(folder, rows, present, new, missing)
        deleted = self._deletes(folder, rows, present, new, missing)
        ingested, failed = self._ingest(folder, present, new)
        return SyncReport(folder, ingested, moved, deleted, failed, unchanged)

    def _moves(self, folder, rows, present, new, missing) -> int:
        """Renames: a missing indexed file whose content appeared at a new path moves its document there."""
        gone = {rows[p].sha256: p for p in missing if rows[p].status == INDEXED and rows[p].doc_id}
        moved = 0
        for path, digest in list(new.items()):
            old = gone.pop(digest, None)
            if old is None:
                continue
            doc_id = rows[old].doc_id
            previous = rows.get(path)  # renamed over an indexed file: that document goes
            if previous is not None and previous.status == INDEXED and previous.doc_id not in (None, doc_id):
                self.pipeline.delete(previous.doc_id)
            self.pipeline.move(doc_id, path)
            st = present[path]
            self.state.put(folder, path, st.st_size, st.st_mtime_ns, digest, doc_id, INDEXED)
            self.state.drop(folder, old)
            missing.remove(old)
            del new[path]
            moved += 1
        return moved

    def _deletes(self, folder, rows, present, new, missing) -> int:
        """Deleted files leave the index, unless a file with the same content is still there (then it takes the
        document over)."""
        for path in missing:
            row = rows[path]
            if row.status == INDEXED and row.doc_id:
                twin = next((p for p, r in rows.items() if p in present and p not in new and r.sha256 == row.sha256
                             and r.status == DUPLICATE), None)
                if twin is not None:
                    self.pipeline.move(row.doc_id, twin)
                    st = present[twin]
                    self.state.put(folder, twin, st.st_size, st.st_mtime_ns, row.sha256, row.doc_id, INDEXED)
                else:
                    self.pipeline.delete(row.doc_id)
            self.state.drop(folder, path)
        return len(missing)

    def _ingest(self, folder: str, present, new: dict[str, str]) -> tuple[int, int]:
        """Ingest new and changed files, ``BATCH_FILES`` at a time, each batch's outcomes committed to the state."""
        ingested = failed = 0
        paths = sorted(new)
        for start in range(0, len(paths), BATCH_FILES):
            if self._stop.is_set():
                break
            done, bad = self._batch(folder, present, new, paths[start:start + BATCH_FILES])
            ingested, failed = ingested + done, failed + bad
        return ingested, failed

    def _batch(self, folder: str, present, new: dict[str, str], paths: list[str]) -> tuple[int, int]:
        sources = [Source.in_folder(p) for p in paths]  # what a folder ingest would skip is skipped, with why
        report = self.pipeline.ingest(sources, cancel=self._stop, background=self.background)
        placed = self.pipeline.documents_by_id({f.doc_id for f in report.files if f.doc_id})
        ingested = failed = 0
        for f in report.files:
            if f.path not in new:
                continue
            if self._stop.is_set() and f.status == "failed" and f.reason.startswith("not attempted"):
                continue  # cancelled by a shutdown: not recorded, so the next start tries it
            st = present[f.path]
            if f.status in ("ok", "duplicate"):
                doc = placed.get(f.doc_id)
                status = INDEXED if doc is not None and doc.path == f.path else DUPLICATE
                ingested += f.status == "ok"
                self.state.put(folder, f.path, st.st_size, st.st_mtime_ns, f.doc_id, f.doc_id, status, f.reason)
            elif report.store_error is None or f.status == "skipped":
                failed += f.status == "failed"
                status = FAILED if f.status == "failed" else SKIPPED
                self.state.put(folder, f.path, st.st_size, st.st_mtime_ns, new[f.path], None, status, f.reason)
        if report.store_error is not None:  # the rest is tried again at the next sync
            raise IndexerError(f"the store failed: {report.store_error}")
        return ingested, failed
