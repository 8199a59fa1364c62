"""Search an embedded store that cannot be opened where it is: a private copy for read-only commands.

qdrant-edge cannot load a shard from a read-only file system (it opens its payload storage read-write:
"Failed to open mmap payload storage: Read-only file system"), and on a full disk opening a shard may fill
sparse files and die with SIGBUS (``edge._room_to_open``).  When that is the only thing in the way, a command that
only reads (``search``, ``stats``, ``documents``, ``similar``) copies the store into a scratch folder
(``MOESEARCH_SCRATCH_DIR``, default the system temp folder, if it has room for the copy) and opens the copy; the
copy is deleted on close.  Nothing can be written into the original meanwhile (read-only) or it is refused for
lack of space (full), so the copy is what the store holds.  Writes through such a root are refused: ``read_only``.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

from .base import StoreError
from .lock import LOCK_FILE, OWNER_FILE

log = logging.getLogger(__name__)
COPY_MARGIN = 64 << 20  # bytes left free in the scratch folder beyond the copy and its sparse holes


def file_bytes(folder: Path) -> int:
    """The files' full size under ``folder``: what a sparse copy takes once opening fills its holes."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def copy_store(folder: Path, scratch: Path) -> Path:
    """Copy ``folder`` (sparse files kept sparse) into a new folder under ``scratch``; returns the copy."""
    scratch.mkdir(parents=True, exist_ok=True)
    need, free = file_bytes(folder) + COPY_MARGIN, shutil.disk_usage(scratch).free
    if free < need:
        raise StoreError(f"cannot search the index at {folder} from a copy either: the scratch folder {scratch} "
                         f"(MOESEARCH_SCRATCH_DIR) has {free / 2**20:.0f} MB free, the copy needs "
                         f"{need / 2**20:.0f} MB")
    dst = Path(tempfile.mkdtemp(prefix="moesearch-readonly-", dir=scratch)) / "qdrant"
    got = subprocess.run(["cp", "-r", "--sparse=always", "--no-preserve=mode,ownership", str(folder), str(dst)],
                         capture_output=True, text=True)
    if got.returncode:
        shutil.rmtree(dst.parent, ignore_errors=True)
        raise StoreError(f"cannot copy the index at {folder} into {scratch}: {got.stderr.strip()}")
    for name in (LOCK_FILE, OWNER_FILE):
        (dst / name).unlink(missing_ok=True)
    log.info("the index at %s cannot be opened in place: searching a copy in %s", folder, dst)
    return dst


def remove_copy(dst: Path) -> None:
    shutil.rmtree(dst.parent, ignore_errors=True)
