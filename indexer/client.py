"""The CLI's way to a running service: when a process serves the index over HTTP (the app's server or
``python -m api serve``), it owns the data folder and says so in ``DATA_DIR/.moesearch-endpoint.json`` (its URL,
pid and a token for this machine's CLI, mode 0600).  ``remote_pipeline(settings)`` returns a ``RemotePipeline``
for it — the ``Pipeline`` methods the CLI calls, over the API, returning the same value types — or None when no
live service owns the folder (the CLI then opens the index itself, as before).

    remote = remote_pipeline(settings)
    with (remote or Pipeline(settings, read_only=reads)) as pipeline: ...

Paths given to ``ingest`` are resolved here and read by the service (same machine, same user).  ``gc`` and
``collections`` are not served over HTTP: stop the service to run them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from .reindex import ReindexCancelled
from .results import (
    DocumentInfo,
    FileStatus,
    Hit,
    IndexerError,
    IngestReport,
    ProgressEvent,
    SearchFilters,
    SimilarDocument,
    Stats,
)
from .settings import IndexerSettings

ENDPOINT_FILE = ".moesearch-endpoint.json"
PROBE_TIMEOUT_S = 3.0  # how long the CLI waits for the service's /health before opening the index itself
REQUEST_TIMEOUT_S = 120.0  # one API request (a job is polled, not waited for in one request)
POLL_S = 0.5  # how often a job's progress is read


def endpoint_file(data_dir: Path) -> Path:
    """Where the process serving this data folder writes its URL (``api.runtime``)."""
    return Path(data_dir) / ENDPOINT_FILE


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remote_pipeline(settings: IndexerSettings) -> RemotePipeline | None:
    """A client for the live service that owns ``settings.data_dir``, or None if there is none."""
    try:
        found = json.loads(endpoint_file(settings.data_dir).read_text())
        url, pid, token = str(found["url"]), int(found["pid"]), str(found["token"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _alive(pid):
        return None
    import httpx

    try:
        health = httpx.get(f"{url}/health", timeout=PROBE_TIMEOUT_S).json()
    except (httpx.HTTPError, ValueError):
        return None
    if not isinstance(health, dict) or health.get("pid") != pid:
        return None
    return RemotePipeline(url, token)


def _fields(cls, data: dict) -> dict:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names}


def _report(data: dict) -> IngestReport:
    files = tuple(FileStatus(**_fields(FileStatus, f)) for f in data.get("files", ()))
    return IngestReport(files, float(data.get("seconds", 0.0)), data.get("store_error"))


class RemotePipeline:
    """The ``Pipeline`` methods the CLI uses, served by a running service (see the module doc)."""

    read_only = False

    def __init__(self, url: str, token: str | None = None, timeout: float = REQUEST_TIMEOUT_S):
        import httpx

        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def __enter__(self) -> RemotePipeline:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, missing: object = ..., **kw):
        """The JSON answer; an error answer raises (``ValueError`` for a refused value), except a 404 when a
        ``missing`` value is given (returned instead)."""
        import httpx

        try:
            response = self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise IndexerError(f"the service at {self.url} did not answer: {exc}") from None
        if response.status_code == 404 and missing is not ...:
            return missing
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                message = f"{error['message']} ({error['code']}, from the service at {self.url})"
            except (ValueError, KeyError, TypeError):
                message = f"HTTP {response.status_code} from the service at {self.url}"
            if response.status_code in (400, 422):
                raise ValueError(message)
            raise IndexerError(message)
        return response.json()

    # --- reads ---------------------------------------------------------------------------------------------
    def search(self, query: str, k: int = 10, filters: SearchFilters | None = None, mode: str = "hybrid"
               ) -> list[Hit]:
        params: list[tuple[str, str | int]] = [("q", query), ("k", k), ("mode", mode)]
        if filters is not None:
            params += [("source", s) for s in filters.sources] + [("type", t) for t in filters.doc_types]
            params += [(name, value) for name, value in (("from", filters.ingested_from),
                                                         ("to", filters.ingested_to)) if value]
        return [Hit(**_fields(Hit, h)) for h in self._call("GET", "/search", params=params)["hits"]]

    def documents(self, offset: int = 0, limit: int | None = None) -> list[DocumentInfo]:
        out: list[DocumentInfo] = []
        while limit is None or len(out) < limit:
            page = min(1000, limit - len(out)) if limit is not None else 1000
            found = self._call("GET", "/documents", params={"offset": offset + len(out), "limit": page})
            out += [DocumentInfo(**_fields(DocumentInfo, d)) for d in found["documents"]]
            if not found["documents"] or len(out) >= found["total"] - offset:
                break
        return out

    def _doc_id(self, target: str) -> str:
        target = target.strip()
        if len(target) == 64 and all(c in "0123456789abcdef" for c in target):
            return target
        try:
            absolute = str(Path(target).expanduser().absolute())
        except (RuntimeError, ValueError):  # '~nobody': only the target as given can match
            absolute = target
        for doc in self.documents():
            if doc.path in (target, absolute) or doc.source == target:
                return doc.doc_id
        raise IndexerError(f"no document matches {target!r} (give a doc_id, a path or a file name)")

    def similar(self, target: str, k: int = 5) -> list[SimilarDocument]:
        found = self._call("GET", f"/documents/{self._doc_id(target)}/similar", params={"k": k})
        return [SimilarDocument(DocumentInfo(**_fields(DocumentInfo, s["document"])), s["score"]) for s in found]

    def stats(self) -> Stats:
        return Stats(**_fields(Stats, self._call("GET", "/stats")))

    # --- writes ---------------------------------------------------------------------------------------------
    def delete(self, target: str) -> list[str]:
        found = self._call("POST", "/documents/delete", json={"target": target}, missing=None)
        return found["deleted"] if found is not None else []

    def ingest(self, items: Iterable[str | os.PathLike] | str | os.PathLike,
               progress: Callable[[ProgressEvent], None] | None = None, workers: int = 1, *,
               cancel: threading.Event | None = None, **_ignored) -> IngestReport:
        """Ingest server paths (resolved here; the service reads them).  ``workers`` is the service's to choose."""
        items = [items] if isinstance(items, str | os.PathLike) else list(items)
        try:
            paths = [str(Path(p).expanduser().absolute()) for p in items]  # the keys a local ingest would use
        except RuntimeError as exc:  # '~nobody'
            raise ValueError(str(exc)) from None
        job = self._call("POST", "/ingest/paths", json={"paths": paths})
        return _report(self._follow(job, progress, cancel)["report"] or {})

    def reindex(self, progress: Callable[[ProgressEvent], None] | None = None, force: bool = False,
                model: str | os.PathLike | None = None, *, cancel: threading.Event | None = None,
                **_ignored) -> IngestReport:
        job = self._call("POST", "/reindex", json={"force": force, "model": str(model) if model else None})
        done = self._follow(job, progress, cancel)
        if done["state"] == "cancelled":
            raise ReindexCancelled(done["message"])
        return _report(done["report"] or {})

    def _follow(self, job: dict, progress, cancel: threading.Event | None) -> dict:
        """Poll a job until it has finished (Ctrl-C -> ``cancel`` set -> the job is cancelled); its last state."""
        asked = False
        while job["state"] in ("queued", "running"):
            if cancel is not None and cancel.is_set() and not asked:
                self._call("POST", f"/jobs/{job['id']}/cancel")
                asked = True
            time.sleep(POLL_S)  # polling a remote job: there is nothing local to wait on
            job = self._call("GET", f"/jobs/{job['id']}")
            if progress is not None and job.get("progress"):
                progress(ProgressEvent(**job["progress"]))
        if job["state"] == "failed":
            raise IndexerError(f"the service's job failed: {job['error']}")
        return job

    def gc(self, *args, **kwargs):
        raise IndexerError(f"gc is not served over HTTP: stop the service at {self.url} first")

    def collections(self):
        raise IndexerError(f"collections are not served over HTTP: stop the service at {self.url} first")
