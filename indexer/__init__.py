"""moesearch indexer: files -> pages -> chunks -> dense + BM25 vectors -> Qdrant, and hybrid search.

The public API is what this package exports (``from indexer import Pipeline, Source, ...``): ``Pipeline`` and the
value types it takes and returns (``pipeline.__all__``), and ``IndexerSettings``.  The CLI is ``python -m indexer``.
"""

from . import pipeline as _pipeline
from .pipeline import *  # noqa: F403 - the API is pipeline.__all__
from .settings import IndexerSettings
from .sniff import accepted_types

__all__ = [*_pipeline.__all__, "IndexerSettings", "accepted_types"]
