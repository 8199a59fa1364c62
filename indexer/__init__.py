"""moesearch indexer: files -> pages -> chunks -> dense + BM25 vectors -> Qdrant, and hybrid search.

The public API is what this package exports (``from indexer import Pipeline, Source, ...``): ``Pipeline`` and the
value types it takes and returns (``pipeline.__all__``), ``IndexerSettings``, and two pure helpers for the app:
``accepted_types``, ``highlight_spans`` (where a hit's matched terms occur in a text), ``built_models`` (the
models this server builds from its wheels), ``group_by_document`` (hits -> one ``DocumentHits`` a document) and
the relevance levels of ``relevance.py`` (``calibration_for``, ``relevance_label``, ``best_similarity``,
``good_match``);
synced folders (``Syncer``, run by the process owning the index; ``synced_folders`` reads their states from any
process; ``allowed_folder`` checks MOESEARCH_INGEST_ROOTS) and the upload spool (``spool_uploads``,
``remove_spool``) for the HTTP API and the app; ``remote_pipeline`` (the live service that owns the data folder,
for the CLI; ``endpoint_file``, ``RemotePipeline``); ``server_path``; ``existing_parent`` (the nearest existing
folder of a path, whose disk a path will be on).  The CLI is ``python -m indexer``.
"""

from . import pipeline as _pipeline
from .client import RemotePipeline, endpoint_file, remote_pipeline
from .diskspace import existing_parent
from .files import remove_spool, spool_uploads
from .formats import accepted_types
from .keywords import highlight_spans
from .model_view import BuiltModel, built_models
from .pipeline import *  # noqa: F403 - the API is pipeline.__all__
from .relevance import Calibration, Relevance, best_similarity, calibration_for, good_match, relevance_label
from .results import DocumentHits
from .search import group_by_document
from .settings import IndexerSettings
from .sync import (
    FolderState,
    Syncer,
    SyncReport,
    add_synced_folder,
    allowed_folder,
    remove_synced_folder,
    server_path,
    synced_folders,
)

__all__ = [*_pipeline.__all__, "IndexerSettings", "accepted_types", "highlight_spans", "BuiltModel", "built_models",
           "DocumentHits", "group_by_document", "Calibration", "Relevance", "best_similarity", "calibration_for",
           "good_match", "relevance_label",
           "FolderState", "Syncer", "SyncReport", "allowed_folder", "synced_folders", "spool_uploads", "remove_spool",
           "existing_parent", "RemotePipeline", "endpoint_file", "remote_pipeline", "server_path",
           "add_synced_folder", "remove_synced_folder"]
