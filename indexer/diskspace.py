"""Free disk space, checked before an ingest writes, and disk errors as one clear sentence.

The embedded store (qdrant-edge) writes through memory-mapped files that it creates *sparse*: an empty collection
is ~273 MB of file size of which ~20 MB is on disk (measured: ``du --apparent-size`` vs ``du``).  Writing into a
hole of such a file when the disk is full is not an error the program can catch: the kernel sends SIGBUS.  So
before any write the ingest asks for: the store's unallocated holes (they may be filled by any write) + what the
batch adds (``GROWTH`` times the bytes of each file, at most ``CHUNK_BYTES`` per chunk the caps allow, plus a
kept copy) + ``MOESEARCH_DISK_RESERVE_MB``; it refuses with one line saying how much is free and needed.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from .results import IndexerError

GROWTH = 16  # store bytes per byte of a text file (measured ~14: vectors, BM25, payload text, HNSW links)
CHUNK_BYTES = 10 * 1024  # store bytes per chunk (measured ~8.6 KB at 384 dims)
DISK_ERRORS = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
               errno.EDQUOT: "the disk quota is exceeded", errno.EACCES: "permission denied",
               errno.EPERM: "permission denied"}


def holes(folder: Path) -> int:
    """Bytes of file size under ``folder`` not yet allocated on disk (sparse regions a write may fill)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            allocated = getattr(st, "st_blocks", st.st_size // 512 + 1) * 512
            total += max(0, st.st_size - allocated)
    return total


def existing_parent(path: Path) -> Path:
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def needed_bytes(sizes: Iterable[int], max_chunks: int, keep_copies: bool) -> int:
    """What a batch of files of these sizes may add to the store (and the kept copies)."""
    return sum(min(GROWTH * n, CHUNK_BYTES * max_chunks) + (n if keep_copies else 0) for n in sizes)


def check_space(data_dir: Path, store_dir: Path | None, sizes: Iterable[int], max_chunks: int, keep_copies: bool,
                reserve_mb: float) -> None:
    """Refuse (``IndexerError``, one line) when the data folder's disk cannot take the batch plus the reserve.
    ``store_dir`` is None for a Qdrant server (only kept copies land here then)."""
    where = existing_parent(data_dir)
    try:
        free = shutil.disk_usage(where).free
    except OSError as exc:
        raise IndexerError(f"cannot check the free space of {where}: {describe(exc)}") from None
    sizes = list(sizes)
    sparse = holes(store_dir) if store_dir is not None and store_dir.exists() else 0
    batch = needed_bytes(sizes, max_chunks, keep_copies) if store_dir is not None else \
        sum(sizes) if keep_copies else 0
    reserve = int(reserve_mb * 2**20)
    need = sparse + batch + reserve
    if free < need:
        raise IndexerError(f"not enough free disk space in {where}: {free / 2**20:.0f} MB free, the ingest needs about "
                           f"{need / 2**20:.0f} MB ({batch / 2**20:.0f} MB for {len(sizes)} file(s), "
                           f"{sparse / 2**20:.0f} MB the store has reserved but not yet written, "
                           f"{reserve_mb:g} MB reserve, MOESEARCH_DISK_RESERVE_MB); nothing was written: free some "
                           "space and ingest again")


def disk_error(exc: BaseException) -> OSError | None:
    """The disk error (full, read-only, no permission) behind ``exc``, if there is one."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in DISK_ERRORS:
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def describe(exc: OSError) -> str:
    """``exc`` as one sentence: what happened, where."""
    what = DISK_ERRORS.get(exc.errno, exc.strerror or str(exc))
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    return f"{what}{where}"
