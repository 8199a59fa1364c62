"""Vector stores behind one interface (see ``base``): qdrant-edge embedded (default) and qdrant-client."""

from __future__ import annotations

from indexer.settings import IndexerSettings

from .base import (
    DENSE,
    MODES,
    SPARSE,
    Collection,
    CollectionSpec,
    Match,
    PointRecord,
    QuerySpec,
    Range,
    Record,
    Root,
    SparseVec,
    StoreError,
    StoreLockedError,
    scroll_all,
)

__all__ = ["DENSE", "MODES", "SPARSE", "Collection", "CollectionSpec", "Match", "PointRecord", "QuerySpec", "Range",
           "Record", "Root", "SparseVec", "StoreError", "StoreLockedError", "open_root", "scroll_all"]


def open_root(settings: IndexerSettings) -> Root:
    """The store root the settings name: a Qdrant server if ``QDRANT_URL`` is set, else the embedded store."""
    if settings.backend == "server":
        from .server import ClientRoot

        return ClientRoot(settings.qdrant_url, alias=settings.collection, api_key=settings.qdrant_api_key,
                          timeout=settings.timeout)
    if settings.backend == "local":
        from .server import ClientRoot

        return ClientRoot(str(settings.data_dir / "qdrant-local"), alias=settings.collection)
    from .edge import EdgeRoot

    return EdgeRoot(settings.store_dir)
