"""Who may call what: write endpoints need an admin token (``Authorization: Bearer msk_...``); read endpoints are
open or need any valid token, by MOESEARCH_API_READ_AUTH.  Tokens: ``api.tokens`` (made by ``python -m api token
create NAME``), plus the owning process's own token for the local CLI (``runtime.py``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from indexer import IndexerError

from .errors import ApiError

bearer = HTTPBearer(auto_error=False, description="an admin token: `python -m api token create NAME`")
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _check(request: Request, token: str | None) -> None:
    runtime = request.app.state.runtime
    if token is None:
        raise ApiError("unauthorized", "this endpoint needs a token: send `Authorization: Bearer <token>` (make one "
                       "with `python -m api token create NAME`)", CHALLENGE)
    try:
        known = runtime.verify(token)
    except ValueError as exc:  # the token file is damaged
        raise IndexerError(str(exc)) from None
    if known is None:
        raise ApiError("unauthorized", "the token is unknown or was revoked", CHALLENGE)
    request.state.token = known.name


def has_token(request: Request) -> bool:
    """Whether the request carries a valid token (read endpoints show more to token holders)."""
    try:
        return request.app.state.runtime.verify(_token(request)) is not None
    except ValueError:
        return False


def admin(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
    """Needs an admin token; the token's name is left in ``request.state.token``."""
    _check(request, credentials.credentials if credentials is not None else None)


def reader(request: Request) -> None:
    if request.app.state.runtime.api.read_auth == "token":
        _check(request, _token(request))
