"""``create_app(runtime)``: the HTTP API as a FastAPI app (OpenAPI schema at ``/openapi.json``, docs at ``/docs``).

Mounted at ``/api/v1`` by the app's server (``app/server.py``: the Streamlit pages and the API share one
pipeline) or served alone by ``python -m api serve`` (``serve`` below).  The runtime is started and closed by
whoever owns it (a mounted app's lifespan does not run).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, FastAPI

from indexer import IndexerSettings, Pipeline

from . import errors
from .routes_admin import router as admin_router
from .routes_read import probes
from .routes_read import router as read_router
from .runtime import Runtime
from .settings import ApiSettings

PREFIX = "/api/v1"
DESCRIPTION = """Search and manage a moesearch index. Write endpoints need an admin token
(`Authorization: Bearer msk_...`, made with `python -m api token create NAME`); read endpoints are open or need
any token (`MOESEARCH_API_READ_AUTH`). Errors are `{"error": {"code": ..., "message": ...}}`."""


def create_app(runtime: Runtime) -> FastAPI:
    """The API over ``runtime`` (which its owner starts and closes: a mounted app's lifespan does not run)."""
    app = FastAPI(title="moesearch API", version="1", description=DESCRIPTION,
                  dependencies=[Depends(errors.known_query)])
    app.state.runtime = runtime
    errors.install(app)
    app.include_router(probes)
    app.include_router(read_router)
    app.include_router(admin_router)
    return app


def runtime_for(provider: Callable[[], Pipeline], settings: IndexerSettings | None = None,
                api: ApiSettings | None = None, url: str | None = None, sync: bool = True) -> Runtime:
    settings = settings or IndexerSettings.from_env()
    return Runtime(settings, api or ApiSettings.from_env(), provider, url=url, sync=sync)
