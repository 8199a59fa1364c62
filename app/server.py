"""The app's HTTP server: ``python -m app.server [streamlit flags]`` (what ``scripts/run.sh`` runs).

Streamlit 1.67 serves an ``st.App`` (its documented ASGI entry point, Starlette + uvicorn) with extra routes; this
module is one: ``app`` below is discovered by ``streamlit run`` and runs ``main.py`` with one more route,
``/api/session``, the only place the admin's session cookie is set or cleared (a Streamlit script can read cookies,
``st.context.cookies``, but has no way to set one, let alone an http-only one):

- ``POST /api/session`` ``{"ticket": ...}``: swaps a one-time ticket (made by the sign-in, ``app.auth``) for the
  session token, set as cookie ``moesearch_admin``: ``HttpOnly; SameSite=Strict; Path=/``, ``Secure`` over https,
  ``Max-Age`` = what is left of the token's life;
- ``DELETE /api/session``: revokes the cookie's token and clears the cookie;
- ``/api/v1/...``: the HTTP API (``api.create_app``; schema at ``/api/v1/openapi.json``, docs at ``/api/v1/docs``)
  over the same ``Pipeline`` the pages use (``app.service.get_service().pipeline``): this process owns the index,
  its folder sync runs here, and it writes the data folder's endpoint file so the CLI talks to it (docs/api.md says
  why the pages call the pipeline in-process rather than through the API, with the measured latencies).

The launcher (``main`` below) sets uvicorn's ``FORWARDED_ALLOW_IPS`` to ``MOESEARCH_TRUSTED_PROXIES`` (empty by
default) before starting ``streamlit run`` on this file: the server then believes ``X-Forwarded-For`` and
``X-Forwarded-Proto`` only from those proxies, the same rule ``app.throttle`` applies (uvicorn's own default would
believe them from any local process).  On the first start (no hash configured anywhere, none stored) the lifespan
makes an admin password and prints it once on the console.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # `streamlit run app/server.py` puts app/ (not the project) on sys.path
    sys.path.insert(0, str(HERE.parent))

import streamlit as st  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Mount, Route  # noqa: E402

from api import PREFIX, create_app, runtime_for  # noqa: E402
from app import auth  # noqa: E402
from app.session import COOKIE, token_expires  # noqa: E402
from app.settings import AppSettings, app_folder  # noqa: E402

log = logging.getLogger("moesearch.server")
FORWARDED_ENV = "FORWARDED_ALLOW_IPS"  # uvicorn's setting: the peers whose X-Forwarded-* it applies
NO_STORE = {"Cache-Control": "no-store"}


def _secrets(name: str):
    return st.secrets.get(name)


def _current() -> str | None:
    text, _ = auth.configured_hash(_secrets)
    return auth.fingerprint(text) if text is not None else None


async def session_route(request: Request) -> Response:
    keeper = auth.session_keeper()
    if keeper is None:
        return Response("sessions are unavailable (see the server log)", 503, headers=NO_STORE)
    secure = request.url.scheme == "https"
    if request.method == "DELETE":
        current = _current()
        if current is not None:
            keeper.revoke(request.cookies.get(COOKIE), current)
        response = Response(status_code=204, headers=NO_STORE)
        response.delete_cookie(COOKIE, path="/", secure=secure, httponly=True, samesite="strict")
        return response
    try:
        body = await request.json()
    except ValueError:
        body = None
    ticket = body.get("ticket") if isinstance(body, dict) else None
    token = keeper.redeem(ticket if isinstance(ticket, str) else None)
    current = _current()
    claims = keeper.verify(token, current) if token and current else None
    if claims is None:
        return Response("unknown or used ticket", 403, headers=NO_STORE)
    response = Response(status_code=204, headers=NO_STORE)
    max_age = int((token_expires(token) or time.time()) - time.time())
    response.set_cookie(COOKIE, token, max_age=max(0, max_age), path="/", secure=secure, httponly=True,
                        samesite="strict")
    return response


def announce_first_password(folder: Path) -> str | None:
    """On a first start (no hash in the environment, secrets or data folder), make the admin password, store its
    hash and print the password once on the console; returns it.  On later starts, one line says where the hash
    comes from and how to replace it."""
    text, origin = auth.configured_hash(_secrets, folder)
    password = auth.first_run_password(folder) if text is None else None
    if password is None:
        if text is not None:
            print(f"  moesearch: the admin password's hash comes from the {origin}; replace it with "
                  f"`.venv/bin/python -m app.auth --set` (or {auth.ENV_VAR})", flush=True)
        return None
    rule = "-" * 78
    print(f"\n{rule}\n  moesearch: an admin password was made for this server (shown this once):\n\n"
          f"      {password}\n\n  Sign in with it on the Ingest page. Only its hash is kept, in\n"
          f"  {auth.hash_file(folder)} (mode 0600).\n  To choose your own: .venv/bin/python -m app.auth --set"
          f"   (or set {auth.ENV_VAR})\n{rule}\n", flush=True)
    return password


@asynccontextmanager
async def lifespan(_app):
    settings = AppSettings.from_env()
    if os.environ.get(FORWARDED_ENV) != settings.trusted_proxies:
        log.warning("started without `python -m app.server`: %s is %r, so the server may believe X-Forwarded-For "
                    "from peers other than MOESEARCH_TRUSTED_PROXIES (%r)", FORWARDED_ENV,
                    os.environ.get(FORWARDED_ENV), settings.trusted_proxies)
    try:
        announce_first_password(app_folder())
    except OSError as exc:
        log.warning("cannot store a first-run admin password: %s", exc)
    RUNTIME.url = RUNTIME.url or _api_url()
    RUNTIME.start()  # opens the pages' pipeline now (the model loads in a thread), then the sync
    try:
        yield
    finally:
        RUNTIME.close()


def _pipeline():
    from app.service import get_service

    return get_service().pipeline


def _api_url() -> str:
    address = st.get_option("server.address") or "127.0.0.1"
    host = "127.0.0.1" if address in ("0.0.0.0", "::") else address
    return f"http://{host}:{st.get_option('server.port')}{PREFIX}"  # routes of st.App are not under baseUrlPath


RUNTIME = runtime_for(_pipeline)
app = st.App(HERE / "main.py", routes=[Route(auth.SESSION_PATH, session_route, methods=["POST", "DELETE"]),
                                       Mount(PREFIX, app=create_app(RUNTIME))], lifespan=lifespan)


def main(argv: list[str] | None = None) -> None:
    """Check the settings, tell uvicorn which proxies to believe, and replace this process by ``streamlit run``
    on this file (same pid; the streamlit flags are passed through)."""
    try:
        settings = AppSettings.from_env()
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    os.environ[FORWARDED_ENV] = settings.trusted_proxies
    args = sys.argv[1:] if argv is None else argv
    os.execv(sys.executable, [sys.executable, "-m", "streamlit", "run", str(Path(__file__).resolve()), *args])


if __name__ == "__main__":
    main()
