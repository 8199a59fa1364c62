"""moesearch indexer: files -> pages -> chunks -> dense + BM25 vectors -> Qdrant, and hybrid search.

The public API is what this package exports (``from indexer import Pipeline, Source, ...``): ``Pipeline`` and the
value types it takes and returns (``pipeline.__all__``), ``IndexerSettings``, and two pure helpers for the app:
``accepted_types``, ``highlight_spans`` (where a hit's matched terms occur in a text) and ``built_models`` (the
models this server builds from its wheels).  The CLI is
``python -m indexer``.
"""

from . import pipeline as _pipeline
from .formats import accepted_types
from .keywords import highlight_spans
from .model_view import BuiltModel, built_models
from .pipeline import *  # noqa: F403 - the API is pipeline.__all__
from .settings import IndexerSettings

__all__ = [*_pipeline.__all__, "IndexerSettings", "accepted_types", "highlight_spans", "BuiltModel", "built_models"]
