"""Errors as JSON: ``{"error": {"code": "...", "message": "..."}}`` with a stable ``code`` per cause.

``ApiError`` is what routes raise; the handlers below turn the indexer's exceptions (``IndexerError``: the request
cannot be served as things stand, ``StoreError``, ``ValueError`` from its argument checks) and request validation
failures into that shape, so no known failure leaves as a 500 or as HTML.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from indexer import IndexerError, StoreError, StoreLockedError

log = logging.getLogger("moesearch.api")

# code -> HTTP status; the codes are part of the contract (docs/api.md lists them)
CODES = {
    "invalid_request": 422,  # the body, a query parameter or a path parameter does not fit the schema
    "bad_request": 400,  # well-formed, but the indexer refused a value (the message names it)
    "unauthorized": 401,  # no token, or an unknown / revoked one
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,  # the index cannot serve this now (e.g. a reindex is running, the model cannot load)
    "too_large": 413,
    "queue_full": 429,
    "not_ready": 503,  # the index is still opening (model loading)
    "store_error": 503,
    "internal": 500,
}


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    def __init__(self, code: str, message: str, headers: dict[str, str] | None = None):
        if code not in CODES:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.code, self.message, self.status, self.headers = code, message, CODES[code], headers


def error_response(code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, CODES[code], headers=headers)


def responses(*codes: str) -> dict[int, dict]:
    """OpenAPI ``responses`` for these error codes (every route documents the errors it may answer)."""
    return {CODES[c]: {"model": ErrorBody, "description": ", ".join(x for x in codes if CODES[x] == CODES[c])}
            for c in codes}


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors()[:5]:
        where = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "request"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request does not fit the schema"


def known_query(request: Request) -> None:
    """Refuse query parameters the operation does not take (a typo such as ``?kk=5`` is an error, not ignored)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    allowed: set[str] = set()
    pending = [dependant]
    while pending:  # the operation's own query parameters and its dependencies'
        d = pending.pop()
        allowed.update(p.alias for p in d.query_params)
        pending.extend(d.dependencies)
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise ApiError("invalid_request", f"unknown query parameter(s) {', '.join(map(repr, unknown[:5]))}; this "
                       f"operation takes {', '.join(sorted(allowed)) or 'none'}")


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_r: Request, exc: ApiError):
        return error_response(exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: Request, exc: RequestValidationError):
        return error_response("invalid_request", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_r: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 413: "too_large"}.get(
            exc.status_code, "bad_request" if exc.status_code < 500 else "internal")
        return error_response(code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(ValueError)
    async def _value(_r: Request, exc: ValueError):
        return error_response("bad_request", str(exc))

    @app.exception_handler(StoreLockedError)
    async def _locked(_r: Request, exc: StoreLockedError):
        return error_response("store_error", str(exc))

    @app.exception_handler(IndexerError)
    async def _indexer(_r: Request, exc: IndexerError):
        return error_response("conflict", str(exc))

    @app.exception_handler(StoreError)
    async def _store(_r: Request, exc: StoreError):
        return error_response("store_error", f"the store failed: {exc}")

    @app.exception_handler(Exception)
    async def _unexpected(_r: Request, exc: Exception):
        log.exception("unexpected error")
        return error_response("internal", f"unexpected {type(exc).__name__}; see the server log")
