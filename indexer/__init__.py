"""moesearch indexer: files -> pages -> chunks -> dense + BM25 vectors -> Qdrant, and hybrid search.

The public API is what this package exports (``from indexer import Pipeline, Source, ...``): ``Pipeline`` and the
value types it takes and returns; settings are ``IndexerSettings``.  The CLI is ``python -m indexer``.
"""

from .pipeline import (
    DocumentFile,
    DocumentInfo,
    Facets,
    FileStatus,
    Hit,
    IndexerError,
    IngestReport,
    ModelInfo,
    Pipeline,
    ProgressEvent,
    RoutingView,
    SearchFilters,
    Source,
    Stats,
    StoreError,
    StoreLockedError,
)
from .settings import IndexerSettings

__all__ = ["DocumentFile", "DocumentInfo", "Facets", "FileStatus", "Hit", "IndexerError", "IndexerSettings",
           "IngestReport", "ModelInfo", "Pipeline", "ProgressEvent", "RoutingView", "SearchFilters", "Source", "Stats",
           "StoreError", "StoreLockedError"]
