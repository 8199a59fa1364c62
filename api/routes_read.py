"""Read endpoints: search, similar documents, the document list and files, facets, stats, the model, health."""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response

from indexer import (
    Calibration,
    DocumentInfo,
    Hit,
    IndexerError,
    SearchFilters,
    best_similarity,
    calibration_for,
    good_match,
    group_by_document,
    relevance_label,
)

from .auth import has_token, reader
from .errors import ApiError, responses
from .models import (
    DOC_ID,
    MAX_K,
    MAX_TEXT,
    DocumentGroup,
    DocumentList,
    DocumentOut,
    Facets,
    Health,
    HitOut,
    Mode,
    Ready,
    SearchOut,
    SimilarOut,
)

MAX_PAGE = 1000  # documents per page of GET /documents
MAX_FILTER_VALUES = 100  # values of one repeated filter parameter
router = APIRouter(dependencies=[Depends(reader)],
                   responses=responses("bad_request", "invalid_request", "unauthorized", "not_ready", "internal"))
probes = APIRouter(responses=responses("invalid_request", "internal"))


def _runtime(request: Request):
    return request.app.state.runtime


def _base(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/")


def file_url(request: Request, doc_id: str, page: int | None = None) -> str:
    return f"{_base(request)}/documents/{doc_id}/file" + (f"#page={page}" if page and page > 1 else "")


def hit_out(request: Request, hit: Hit, cal: Calibration | None, best: float | None) -> HitOut:
    relevance = relevance_label(hit.similarity, cal, hit.score, best)
    return HitOut(**dataclasses.asdict(hit), file_url=file_url(request, hit.doc_id, hit.page),
                  relevance=dataclasses.asdict(relevance))


def document_out(request: Request, doc: DocumentInfo) -> DocumentOut:
    return DocumentOut(**dataclasses.asdict(doc), file_url=file_url(request, doc.doc_id))


def grouped(request: Request, hits: list[Hit], passages: int, cal: Calibration | None,
            best: float | None) -> list[DocumentGroup]:
    """One entry per document in the order of its best hit, with its best ``passages`` hits."""
    return [DocumentGroup(doc_id=g.doc_id, source=g.source, doc_type=g.doc_type, matched=g.matched,
                          hits=[hit_out(request, h, cal, best) for h in g.hits])
            for g in group_by_document(hits, passages)]


@probes.get("/health", response_model=Health, summary="liveness: the process answers (always open)")
def health(request: Request) -> Health:
    runtime = _runtime(request)
    uptime = round(time.time() - runtime.started_at, 3)
    return Health(status="ok", ready=runtime.ready, pid=os.getpid(), uptime_s=uptime)


@probes.get("/ready", response_model=Ready, summary="readiness: the index is open and the model loaded (else 503)",
            responses=responses("not_ready"))
def ready(request: Request) -> Ready:
    _runtime(request).pipeline  # noqa: B018 - raises not_ready
    return Ready(ready=True)


@router.get("/search", response_model=SearchOut, responses=responses("bad_request", "conflict"),
            summary="search: hybrid (dense + BM25, RRF), dense or keyword, under filters; optionally by document")
def search(request: Request,
           q: Annotated[str, Query(min_length=1, max_length=MAX_TEXT, description="the query")],
           k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
           mode: Mode = "hybrid",
           source: Annotated[list[str], Query(max_length=MAX_FILTER_VALUES, description="only these file names")] = (),
           doc_type: Annotated[list[str], Query(max_length=MAX_FILTER_VALUES, alias="type",
                                                description="only these document types (pdf, txt, ...)")] = (),
           ingested_from: Annotated[str | None, Query(alias="from", max_length=64,
                                                      description="ingested on or after (ISO date/datetime)")] = None,
           ingested_to: Annotated[str | None, Query(alias="to", max_length=64,
                                                    description="ingested on or before (ISO date/datetime)")] = None,
           group: Annotated[bool, Query(description="also return the hits grouped by document")] = False,
           passages: Annotated[int, Query(ge=1, le=MAX_K, description="hits per document when grouped")] = 3,
           ) -> SearchOut:
    if not q.strip():
        raise ApiError("bad_request", "the query is empty")
    filters = SearchFilters(tuple(source), tuple(doc_type), ingested_from or None, ingested_to or None)
    t0 = time.perf_counter()
    pipeline = _runtime(request).pipeline
    hits = pipeline.search(q, k=k, filters=filters, mode=mode)
    took = (time.perf_counter() - t0) * 1000
    # the serving model's levels, as the search page judges them (indexer/relevance.py)
    cal = calibration_for(pipeline.model_info().model_id, pipeline.settings.min_similarity)
    best = best_similarity(h.similarity for h in hits)
    return SearchOut(query=q, mode=mode, k=k, took_ms=round(took, 3),
                     good_match=good_match([h.similarity for h in hits], cal),
                     no_match_below=cal.no_match if cal is not None else None,
                     hits=[hit_out(request, h, cal, best) for h in hits],
                     documents=grouped(request, hits, passages, cal, best) if group else None)


@router.get("/documents", response_model=DocumentList, summary="the indexed documents, by file name")
def documents(request: Request, offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
              limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100) -> DocumentList:
    pipeline = _runtime(request).pipeline
    total = len(pipeline.documents())
    return DocumentList(total=total, offset=offset,
                        documents=[document_out(request, d) for d in pipeline.documents(offset, limit)])


def _document(request: Request, doc_id: str) -> DocumentInfo:
    found = _runtime(request).pipeline.documents_by_id([doc_id]).get(doc_id)
    if found is None:
        raise ApiError("not_found", f"no document {doc_id!r}")
    return found


DocId = Annotated[str, PathParam(pattern=DOC_ID, description="a document's id (sha256 of its bytes)")]


@router.get("/documents/{doc_id}", response_model=DocumentOut, responses=responses("not_found"),
            summary="one document's record")
def document(request: Request, doc_id: DocId) -> DocumentOut:
    return document_out(request, _document(request, doc_id))


@router.get("/documents/{doc_id}/file", response_class=Response, responses={
    **responses("not_found", "conflict"), 200: {"content": {"application/octet-stream": {}},
                                                "description": "the original file"}},
            summary="download the original (its kept copy, or the file at its path while unchanged)")
def document_file(request: Request, doc_id: DocId) -> Response:
    try:
        handle = _runtime(request).pipeline.document_file(doc_id)
        data = handle.read()
    except IndexerError as exc:
        raise ApiError("not_found" if "no document" in str(exc) else "conflict", str(exc)) from None
    disposition = f"attachment; filename*=UTF-8''{quote(handle.name)}"
    return Response(data, media_type=handle.mime, headers={"Content-Disposition": disposition})


@router.get("/documents/{doc_id}/similar", response_model=list[SimilarOut], responses=responses("not_found"),
            summary="the documents most like this one (similarity vectors)")
def similar(request: Request, doc_id: DocId,
            k: Annotated[int, Query(ge=1, le=MAX_K)] = 5) -> list[SimilarOut]:
    _document(request, doc_id)
    found = _runtime(request).pipeline.similar(doc_id, k=k)
    return [SimilarOut(score=s.score, document=document_out(request, s.doc)) for s in found]


@router.get("/facets", response_model=Facets, summary="the file names and document types in the index (filters)")
def facets(request: Request) -> Facets:
    f = _runtime(request).pipeline.facets()
    return Facets(sources=list(f.sources), doc_types=list(f.doc_types))


@router.get("/stats", response_model=dict[str, Any], summary="counts, store, serving and configured model")
def stats(request: Request) -> JSONResponse:
    data = _runtime(request).pipeline.stats().to_dict()
    if not has_token(request):
        data["location"] = "(shown to token holders: MOESEARCH_API_READ_AUTH=token)"
        data.get("extra", {}).pop("store", None)
    return JSONResponse(data)


@router.get("/model", response_model=dict[str, Any], summary="the model serving queries (or ?current=true: the "
            "one the settings name now): id, version, MoE mode, tasks, onnxruntime provider")
def model(request: Request, current: bool = False) -> JSONResponse:
    info = _runtime(request).pipeline.model_info(current)
    data = dataclasses.asdict(info)
    if not has_token(request):
        data["model_dir"] = ""
    return JSONResponse(data)
