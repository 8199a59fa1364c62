"""moesearch's HTTP API: one process owns the index and serves it (search, documents, stats, model, health; for
admins ingest, delete, re-index, jobs, synced folders).  ``create_app(runtime)`` builds the FastAPI app; the app's
server mounts it at ``/api/v1`` beside the Streamlit pages, ``python -m api serve`` serves it alone, ``api.client``
talks to it (the CLI uses that when a service owns the data folder).  It imports only the indexer's public API.
"""

from .app import PREFIX, create_app, runtime_for
from .runtime import Runtime
from .settings import ApiSettings

__all__ = ["PREFIX", "ApiSettings", "Runtime", "create_app", "runtime_for"]
