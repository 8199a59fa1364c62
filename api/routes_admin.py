"""Write endpoints (an admin token on every one): ingest (uploads, server folders), delete, re-index, jobs, synced
folders.  Ingest and re-index are jobs (202 + the job; ``?wait=true`` answers when it has finished, up to
``MAX_WAIT_S``); the job's ``report`` is the structure ``python -m indexer ingest --json`` prints."""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from indexer import allowed_folder, remove_spool, server_path, spool_uploads

from .auth import admin
from .errors import ApiError, responses
from .jobs import Job
from .models import (
    Deleted,
    DeleteIn,
    FolderIn,
    FolderOut,
    FolderRemoved,
    JobOut,
    PathsIn,
    ReindexIn,
    RemoveFolderIn,
    Rescan,
    RescanIn,
)
from .routes_read import DocId
from .runtime import LOCAL_TOKEN

MAX_WAIT_S = 600.0  # ?wait=true answers after this at the latest (the job goes on)
router = APIRouter(dependencies=[Depends(admin)],
                   responses=responses("bad_request", "invalid_request", "unauthorized", "not_ready", "internal"))
Wait = Annotated[bool, Query(description=f"answer when the job has finished (at most {MAX_WAIT_S:.0f} s)")]


def _runtime(request: Request):
    return request.app.state.runtime


def _answer(request: Request, job: Job, wait: bool) -> JSONResponse:
    if wait:
        _runtime(request).jobs.wait(job, MAX_WAIT_S)
    return JSONResponse(JobOut(**job.to_dict()).model_dump(mode="json"), 200 if job.finished else 202)


JOB_RESPONSES = {200: {"model": JobOut, "description": "the job has finished (wait=true)"},
                 202: {"model": JobOut, "description": "the job is queued or running"}}


async def strict_form(request: Request) -> None:
    """An empty ``replace`` field is an error (FastAPI would read it as "not sent", i.e. false)."""
    form = await request.form()
    if any(key == "replace" and value == "" for key, value in form.multi_items()):
        raise ApiError("invalid_request", "replace: must be true or false, got an empty value")


@router.post("/ingest", status_code=202, response_model=JobOut, dependencies=[Depends(strict_form)],
             responses={**JOB_RESPONSES, **responses("bad_request", "too_large", "queue_full")},
             summary="ingest uploaded files (multipart, field `files`, repeatable)")
def ingest_upload(request: Request, files: Annotated[list[UploadFile], File(description="the files")],
                  replace: Annotated[bool, Form(description="an upload under a name already indexed replaces "
                                                           "that document (default: both are kept)")] = False,
                  wait: Wait = False) -> JSONResponse:
    runtime = _runtime(request)
    api = runtime.api
    pipeline = runtime.pipeline
    if len(files) > api.max_upload_files:
        raise ApiError("too_large", f"{len(files)} files in one request; at most {api.max_upload_files} "
                       "(MOESEARCH_API_MAX_UPLOAD_FILES)")
    total = sum(f.size or 0 for f in files)
    if total > api.max_upload_bytes:
        raise ApiError("too_large", f"the upload is {total / 2**20:.1f} MB; at most {api.max_upload_mb:g} MB per "
                       "request (MOESEARCH_API_MAX_UPLOAD_MB)")
    named = [((f.filename or "").strip() or "upload", f.file) for f in files]
    sources, spool = spool_uploads(named, runtime.settings.data_dir / "api" / "spool")
    label = f"{len(sources)} uploaded file{'s' if len(sources) != 1 else ''}"

    def work(progress, cancel: threading.Event):
        return pipeline.ingest(sources, progress=progress, cancel=cancel, replace=replace, background=True)

    try:
        job = runtime.jobs.submit("ingest", label, work, cleanup=lambda: remove_spool(spool))
    except ApiError:
        remove_spool(spool)
        raise
    return _answer(request, job, wait)


@router.post("/ingest/paths", status_code=202, response_model=JobOut,
             responses={**JOB_RESPONSES, **responses("bad_request", "queue_full")},
             summary="ingest server files or folders (recursive) within MOESEARCH_INGEST_ROOTS")
def ingest_paths(request: Request, body: PathsIn, wait: Wait = False) -> JSONResponse:
    runtime = _runtime(request)
    pipeline = runtime.pipeline
    if request.state.token == LOCAL_TOKEN:  # this machine's CLI, as the server's user: any path it can read
        paths = [server_path(p) for p in body.paths]
        if missing := [str(p) for p in paths if not p.exists()]:
            raise ApiError("bad_request", f"no such file or folder: {', '.join(missing[:5])}")
    else:
        paths = [allowed_folder(runtime.settings, p) for p in body.paths]
    label = str(paths[0]) if len(paths) == 1 else f"{len(paths)} paths"

    def work(progress, cancel: threading.Event):
        return pipeline.ingest(paths, progress=progress, cancel=cancel, background=True)

    return _answer(request, runtime.jobs.submit("ingest", label, work), wait)


@router.post("/reindex", status_code=202, response_model=JobOut,
             responses={**JOB_RESPONSES, **responses("bad_request", "conflict", "queue_full")},
             summary="re-embed every document with the configured model (or `model`), then switch")
def reindex(request: Request, body: ReindexIn, wait: Wait = False) -> JSONResponse:
    runtime = _runtime(request)
    pipeline = runtime.pipeline

    def work(progress, cancel: threading.Event):
        return pipeline.reindex(progress, force=body.force, model=body.model, cancel=cancel, background=True)

    return _answer(request, runtime.jobs.submit("reindex", body.model or "all documents", work), wait)


@router.delete("/documents/{doc_id}", response_model=Deleted, responses=responses("not_found", "conflict"),
               summary="delete one document")
def delete_document(request: Request, doc_id: DocId) -> Deleted:
    return _delete(request, doc_id)


@router.post("/documents/delete", response_model=Deleted, responses=responses("not_found", "conflict"),
             summary="delete the documents matching a doc_id, a path or a file name")
def delete_target(request: Request, body: DeleteIn) -> Deleted:
    return _delete(request, body.target)


def _delete(request: Request, target: str) -> Deleted:
    removed = _runtime(request).pipeline.delete(target)
    if not removed:
        raise ApiError("not_found", f"no document matches {target!r} (give a doc_id, a path or a file name)")
    return Deleted(deleted=removed)


@router.get("/jobs", response_model=list[JobOut], summary="the write jobs, newest first")
def jobs(request: Request) -> list[JobOut]:
    return [JobOut(**j.to_dict()) for j in _runtime(request).jobs.list()]


JobId = Annotated[str, PathParam(pattern=r"^[0-9a-f]{32}$", description="a job's id")]


@router.get("/jobs/{job_id}", response_model=JobOut, responses=responses("not_found"),
            summary="a job's state, progress and (when finished) its report")
def job(request: Request, job_id: JobId) -> JobOut:
    return JobOut(**_runtime(request).jobs.get(job_id).to_dict())


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, responses=responses("not_found"),
             summary="cancel a job: files done stay, the one in progress is rolled back")
def cancel_job(request: Request, job_id: JobId) -> JobOut:
    return JobOut(**_runtime(request).jobs.cancel(job_id).to_dict())


@router.get("/sync/folders", response_model=list[FolderOut], summary="the synced folders: last sync, counts, "
            "failures")
def sync_folders(request: Request) -> list[FolderOut]:
    return [FolderOut(**s.to_dict()) for s in _runtime(request).sync().folders()]


@router.post("/sync/folders", response_model=FolderOut, responses=responses("bad_request", "conflict"),
             summary="sync a folder within MOESEARCH_INGEST_ROOTS (new, changed, renamed, deleted files follow)")
def add_sync_folder(request: Request, body: FolderIn) -> FolderOut:
    return FolderOut(**_runtime(request).sync().add(body.path).to_dict())


@router.post("/sync/folders/remove", response_model=FolderRemoved,
             responses=responses("bad_request", "not_found", "conflict"),
             summary="stop syncing a folder (purge=true also deletes its documents)")
def remove_sync_folder(request: Request, body: RemoveFolderIn) -> FolderRemoved:
    path = str(server_path(body.path))
    if path not in {f.path for f in _runtime(request).sync().folders()}:
        raise ApiError("not_found", f"{path} is not a synced folder")
    return FolderRemoved(path=path, deleted=_runtime(request).sync().remove(path, purge=body.purge))


@router.post("/sync/rescan", response_model=Rescan, status_code=202,
             responses=responses("bad_request", "not_found", "conflict"),
             summary="sync one folder (or all) now")
def rescan(request: Request, body: RescanIn) -> Rescan:
    syncer = _runtime(request).sync()
    folders = [f.path for f in syncer.folders()]
    if body.path is not None:
        path = str(server_path(body.path))
        if path not in folders:
            raise ApiError("not_found", f"{path} is not a synced folder")
        folders = [path]
    for folder in folders:
        syncer.request(folder)
    return Rescan(requested=folders)

