"""What the API serves from: the process's ``Pipeline`` (opened once, possibly late), the jobs, the synced folders,
the tokens, and the endpoint file that tells the CLI a service owns the data folder.

The pipeline comes from a provider (``Runtime(provider=...)``): the app's server passes the Streamlit app's own
pipeline, so the pages and the API share one index and one model; ``python -m api`` opens its own.  ``start``
opens it in a thread (the model loads meanwhile; ``/ready`` says when it is open) and then starts the folder sync
and writes ``DATA_DIR/.moesearch-endpoint.json`` (mode 0600: the URL, the pid and a token of this process that
the local CLI uses for writes — whoever can read the data folder can change the index anyway).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable

from indexer import IndexerSettings, Pipeline, Syncer, endpoint_file

from .errors import ApiError
from .jobs import Jobs
from .settings import ApiSettings
from .tokens import PREFIX, TokenInfo, TokenStore, digest

log = logging.getLogger("moesearch.api")
LOCAL_TOKEN = "local-cli"


class Runtime:
    def __init__(self, settings: IndexerSettings, api: ApiSettings, provider: Callable[[], Pipeline],
                 url: str | None = None, sync: bool = True):
        self.settings, self.api = settings, api
        self._provider = provider
        self.url = api.public_url or url
        self.tokens = TokenStore(settings.data_dir)
        self.jobs = Jobs(api.max_queued_jobs)
        self.local_token = PREFIX + secrets.token_urlsafe(32)
        self._local_digest = digest(self.local_token)
        self._pipeline: Pipeline | None = None
        self.syncer: Syncer | None = None
        self.error: str | None = None  # why the pipeline could not open
        self._sync = sync
        self._opened = threading.Event()
        self._thread: threading.Thread | None = None
        self.started_at = time.time()

    # --- lifecycle -------------------------------------------------------------------------------------------
    def start(self, wait: bool = False) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._open, name="moesearch-api-open", daemon=True)
            self._thread.start()
        if wait:
            self._opened.wait()

    def _open(self) -> None:
        try:
            pipeline = self._provider()
        except Exception as exc:  # reported by /ready and every route that needs the index
            log.exception("the index could not be opened")
            self.error = f"{type(exc).__name__}: {exc}"
            self._opened.set()
            return
        self._pipeline = pipeline
        if self._sync and not pipeline.read_only:
            self.syncer = Syncer(pipeline, self.settings, background=True)
            self.syncer.start()
        self._write_endpoint()
        self._opened.set()

    def _write_endpoint(self) -> None:
        if not self.url:
            return
        path = endpoint_file(self.settings.data_dir)
        try:
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump({"url": self.url, "pid": os.getpid(), "token": self.local_token,
                           "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, out)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("cannot write %s (the CLI will not find this server): %s", path, exc)

    def close(self) -> None:
        """Stop the sync and the jobs and remove the endpoint file (the pipeline is its provider's to close)."""
        path = endpoint_file(self.settings.data_dir)
        try:
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError, AttributeError):
            pass
        if self.syncer is not None:
            self.syncer.stop()
        self.jobs.close()

    # --- what routes use ----------------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self._pipeline is not None

    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            if self.error is not None:
                raise ApiError("not_ready", f"the index could not be opened: {self.error}")
            raise ApiError("not_ready", "the index is opening (the model is loading); try again shortly",
                           headers={"Retry-After": "5"})
        return self._pipeline

    def sync(self) -> Syncer:
        self.pipeline  # noqa: B018 - not ready -> not_ready
        if self.syncer is None:
            raise ApiError("conflict", "folder sync is off in this process (a read-only index)")
        return self.syncer

    def verify(self, token: str | None) -> TokenInfo | None:
        if token and token.startswith(PREFIX) and secrets.compare_digest(digest(token), self._local_digest):
            return TokenInfo(LOCAL_TOKEN, "", self._local_digest)
        return self.tokens.verify(token)
