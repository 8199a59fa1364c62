"""Vector stores behind one interface (see ``base``): qdrant-edge embedded (default) and qdrant-client."""

from __future__ import annotations

import errno

from indexer.settings import IndexerSettings

from . import base as _base
from .base import *  # noqa: F403 - the store interface is base.__all__
from .base import Root, StoreError, StoreLockedError

__all__ = [*_base.__all__, "open_root"]


def open_root(settings: IndexerSettings, read_only: bool = False) -> Root:
    """The store root the settings name: a Qdrant server if ``QDRANT_URL`` is set, else the embedded store.
    ``read_only`` (a command that only reads): an embedded store that cannot be opened in place because its disk
    is read-only or full is opened as a private copy in ``MOESEARCH_SCRATCH_DIR`` (``edge_copy.py``)."""
    if settings.backend == "server":
        from .server import ClientRoot

        return ClientRoot(settings.qdrant_url, alias=settings.collection, api_key=settings.qdrant_api_key,
                          timeout=settings.timeout)
    if settings.backend == "local":
        from .server import ClientRoot

        return ClientRoot(str(settings.data_dir / "qdrant-local"), alias=settings.collection)
    from .edge import EdgeRoot

    try:
        return EdgeRoot(settings.store_dir)
    except (OSError, StoreError) as exc:
        if not read_only or not _blocked_by_disk(exc) or not (settings.store_dir / "collections").is_dir():
            raise
        return EdgeRoot.read_only_copy(settings.store_dir, settings.scratch_dir)


def _blocked_by_disk(exc: BaseException) -> bool:
    """True if only the disk (read-only, full) keeps the store from opening in place (not a lock, not a bug)."""
    from indexer.diskspace import disk_error

    from .edge import NoRoomToOpen

    if isinstance(exc, StoreLockedError):
        return False
    disk = disk_error(exc)
    return isinstance(exc, NoRoomToOpen) or (disk is not None and disk.errno in (errno.EROFS, errno.ENOSPC))
