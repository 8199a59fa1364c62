"""moesearch indexer: files -> pages -> chunks -> dense + BM25 vectors -> Qdrant, and hybrid search.

The API is ``indexer.pipeline.Pipeline`` (settings in ``indexer.settings``); the CLI is ``python -m indexer``.
"""
