"""Vector stores behind one interface (see ``base``): qdrant-edge embedded (default) and qdrant-client."""

from __future__ import annotations

from indexer.settings import IndexerSettings

from . import base as _base
from .base import *  # noqa: F403 - the store interface is base.__all__
from .base import Root

__all__ = [*_base.__all__, "open_root"]


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
