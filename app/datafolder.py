"""The app's own message when its data folder cannot be written, instead of the service's raw ``OSError``.

The search service opens the embedded index in ``MOESEARCH_DATA_DIR`` (``qdrant/``) and keeps the app's files
there (``app/``); opening writes (the store's lock and owner files, new folders), so a folder on a read-only file
system, on a full disk, without write permission for the app's user, or with a file where a folder should be stops
every page.  ``problem`` tells those apart from other failures (a missing model, a locked store: the pages'
``service_or_stop`` explains them) from the error itself (its errno and file) and, when the error does not say
(the store refusing to open on a nearly full disk), from the folder itself (``probe``: no writes).
``data_folder_gate`` (called by ``main.py`` on every run, a cache lookup once the service is open) shows the
problem in words: which folder, the cause, what the admin can do; the path itself only to a browser on the server's
machine or a signed-in admin (as the Status page), with the details in the log.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from indexer import IndexerSettings, StoreError, StoreLockedError, existing_parent

log = logging.getLogger(__name__)
READ_ONLY, FULL, DENIED, IN_THE_WAY = "read-only", "full", "permission denied", "a file in the way"
CAUSES = {errno.EROFS: READ_ONLY, errno.ENOSPC: FULL, errno.EDQUOT: FULL, errno.EACCES: DENIED,
          errno.EPERM: DENIED, errno.ENOTDIR: IN_THE_WAY, errno.EEXIST: IN_THE_WAY}
FULL_BELOW = 64 << 20  # bytes free under which a store that refuses to open is taken to be on a full disk


@dataclass(frozen=True)
class DataFolderProblem:
    """Why the data folder cannot be written: ``cause`` (one of CAUSES' values), the path where it shows."""

    cause: str
    path: Path
    free_bytes: int | None = None

    def __post_init__(self):
        if self.cause not in CAUSES.values():
            raise ValueError(f"unknown data folder problem {self.cause!r}")

    def reason(self) -> str:
        """The cause as a sentence (no path)."""
        if self.cause == READ_ONLY:
            return "its file system is read-only"
        if self.cause == FULL:
            free = f" ({self.free_bytes / 2**20:.0f} MB free)" if self.free_bytes is not None else ""
            return f"its disk is full{free}"
        if self.cause == DENIED:
            return "the app's user may not write there (permission denied)"
        return "a file is where a folder should be"

    def remedy(self) -> str:
        """What the admin can do."""
        move = "or set `MOESEARCH_DATA_DIR` to another folder and restart the app"
        return {READ_ONLY: f"make the file system writable (remount it read-write), {move}",
                FULL: f"free some space on that disk, {move} on a disk with room",
                DENIED: f"give the app's user write permission on the folder (chown / chmod), {move}",
                IN_THE_WAY: f"move the file out of the way, {move}"}[self.cause]


def _under(path: Path, folder: Path) -> bool:
    return path.absolute() == folder.absolute() or path.absolute().is_relative_to(folder.absolute())


def _free(path: Path) -> int | None:
    try:
        return shutil.disk_usage(existing_parent(path)).free
    except OSError:
        return None


def probe(data_dir: Path) -> DataFolderProblem | None:
    """The data folder's own state, without writing: a file in the way, a read-only file system, no write
    permission, a nearly full disk (None: none of these)."""
    data_dir = Path(data_dir)
    where = existing_parent(data_dir)
    if not where.is_dir():
        return DataFolderProblem(IN_THE_WAY, where)
    if os.statvfs(where).f_flag & os.ST_RDONLY:
        return DataFolderProblem(READ_ONLY, where)
    if not os.access(where, os.W_OK | os.X_OK):
        return DataFolderProblem(DENIED, where)
    free = _free(where)
    if free is not None and free < FULL_BELOW:
        return DataFolderProblem(FULL, where, free)
    return None


def problem(exc: BaseException, data_dir: Path) -> DataFolderProblem | None:
    """The data folder problem behind ``exc`` (the service failed to open), or None if it is something else."""
    data_dir = Path(data_dir)
    seen, cur = 0, exc
    while cur is not None and seen < 10:
        if isinstance(cur, OSError) and cur.errno in CAUSES:
            name = Path(os.fsdecode(cur.filename)) if cur.filename else None
            if name is not None and not _under(name, data_dir):
                return None  # e.g. an unreadable model folder: not the data folder's problem
            cause = CAUSES[cur.errno]
            return DataFolderProblem(cause, name or data_dir, _free(data_dir) if cause == FULL else None)
        cur, seen = cur.__cause__ or cur.__context__, seen + 1
    if isinstance(exc, StoreError) and not isinstance(exc, StoreLockedError):
        return probe(data_dir)  # e.g. the store refused to open on a nearly full disk
    return None


def data_folder_gate() -> None:
    """Open the search service; if the data folder keeps it from opening, show why and stop the page."""
    import streamlit as st

    from app.auth import is_admin, is_local
    from app.service import get_service, opening
    from app.snippets import md_escape

    try:
        with opening():
            get_service()
        return
    except Exception as exc:
        try:
            data_dir = IndexerSettings.from_env().data_dir
        except ValueError:
            return  # a bad setting: the page's service_or_stop explains it
        found = problem(exc, data_dir)
        if found is None:
            return  # the page's service_or_stop explains it (a missing model, a locked store...)
        log.error("the data folder %s cannot be written (%s at %s): %s", data_dir, found.cause, found.path, exc)
    setting = "`MOESEARCH_DATA_DIR`"
    if is_local() or is_admin():
        at = f" (at {md_escape(str(found.path))})" if found.path != data_dir else ""
        where = f"The app's data folder {md_escape(str(data_dir))} ({setting}) cannot be written: {found.reason()}{at}."
    else:  # server paths are for the admin (as on the Status page)
        where = f"The app's data folder ({setting}; its path is in the app's log) cannot be written: {found.reason()}."
    st.error(f"**The search service cannot open its index.** {where}\n\nSearching and ingesting are unavailable "
             f"until this is fixed. The admin can {found.remedy()}; then reload this page.")
    if st.button("Try again", key="data-folder-retry"):
        st.rerun()
    st.stop()
