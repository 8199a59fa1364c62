"""``python -m api serve|token|sync``: the API alone (no UI), its admin tokens, synced folders.

    python -m api serve [--host 127.0.0.1] [--port 8600]   # this process owns the index (MOESEARCH_DATA_DIR)
    python -m api token create NAME                         # prints the token once; only its hash is kept
    python -m api token list | revoke NAME
    python -m api sync add PATH | remove PATH [--purge] | list | rescan [PATH]

``sync`` talks to the running service when one owns the data folder; otherwise it edits the sync state, which
the next service to start follows (``sync remove --purge`` then opens the index to delete the documents).
Exit status: 0 ok, 1 nothing matched, 2 usage or service error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from contextlib import asynccontextmanager

from indexer import (
    IndexerError,
    IndexerSettings,
    Pipeline,
    StoreError,
    Syncer,
    remote_pipeline,
    server_path,
    synced_folders,
)

from .tokens import TokenStore

OK, NOTHING, ERROR = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m api", description="moesearch's HTTP API (settings: MOESEARCH_* "
                                "environment variables, as the indexer and the app)")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve the API alone (no UI); this process owns the index")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8600)
    s.add_argument("--no-sync", action="store_true", help="do not run the synced folders here")
    t = sub.add_parser("token", help="admin tokens for the write endpoints")
    t.add_argument("action", choices=("create", "list", "revoke"))
    t.add_argument("name", nargs="?")
    y = sub.add_parser("sync", help="synced folders (within MOESEARCH_INGEST_ROOTS)")
    y.add_argument("action", choices=("add", "remove", "list", "rescan"))
    y.add_argument("path", nargs="?")
    y.add_argument("--purge", action="store_true", help="remove: also delete the folder's documents")
    return p


def serve(settings: IndexerSettings, host: str, port: int, sync: bool) -> int:
    """The API at http://HOST:PORT/api/v1 (as mounted by the app's server), until SIGINT/SIGTERM."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from . import PREFIX, create_app, runtime_for

    runtime = runtime_for(lambda: Pipeline(settings), settings, url=f"http://{host}:{port}{PREFIX}", sync=sync)

    @asynccontextmanager
    async def lifespan(_app):
        runtime.start()
        try:
            yield
        finally:
            runtime.close()
            if runtime.ready:
                runtime.pipeline.close()

    uvicorn.run(Starlette(routes=[Mount(PREFIX, app=create_app(runtime))], lifespan=lifespan), host=host, port=port,
                log_level="info")
    return OK


def token(settings: IndexerSettings, action: str, name: str | None) -> int:
    store = TokenStore(settings.data_dir)
    if action == "list":
        for t in store.list():
            print(f"{t.name:<24} created {t.created_at}  sha256 {t.sha256[:12]}...")
        return OK
    if not name:
        raise ValueError(f"token {action} needs a NAME")
    if action == "create":
        print(store.create(name))
        print(f"(shown this once: only its hash is kept, in {store.path}; revoke it with `python -m api token "
              f"revoke {name}`)", file=sys.stderr)
        return OK
    if store.revoke(name):
        print(f"revoked {name}")
        return OK
    print(f"no token named {name!r}", file=sys.stderr)
    return NOTHING


def sync(settings: IndexerSettings, action: str, path: str | None, purge: bool) -> int:
    if action in ("add", "remove") and not path:
        raise ValueError(f"sync {action} needs a PATH")
    remote = remote_pipeline(settings)
    if remote is not None:
        with remote:
            if action == "list":
                found = remote._call("GET", "/sync/folders")
            elif action == "add":
                found = remote._call("POST", "/sync/folders", json={"path": path})
            elif action == "remove":
                found = remote._call("POST", "/sync/folders/remove", json={"path": path, "purge": purge})
            else:
                found = remote._call("POST", "/sync/rescan", json={"path": path})
        print(json.dumps(found, indent=2))
        return OK
    with Pipeline(settings) as pipeline:  # no service owns the folder: this process does, for one sync
        syncer = Syncer(pipeline, settings)
        if action == "add":
            state = syncer.add(path)
            report = syncer.sync(state.path)
            print(json.dumps(report.to_dict(), indent=2))
        elif action == "remove":
            removed = syncer.remove(path, purge=purge)
            print(f"stopped syncing {server_path(path)}" + (f"; deleted {len(removed)} document(s)" if purge else ""))
        elif action == "list":
            print(json.dumps([f.to_dict() for f in synced_folders(settings)], indent=2))
        else:
            folders = [str(server_path(path))] if path else [f.path for f in syncer.folders()]
            print(json.dumps([syncer.sync(f).to_dict() for f in folders], indent=2))
    return OK


def run(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.command == "serve" else logging.WARNING,
                        format="%(levelname)s %(name)s %(message)s")
    try:
        settings = IndexerSettings.from_env()
        if args.command == "serve":
            return serve(settings, args.host, args.port, not args.no_sync)
        if args.command == "token":
            return token(settings, args.action, args.name)
        return sync(settings, args.action, args.path, args.purge)
    except (ValueError, IndexerError, StoreError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ERROR


if __name__ == "__main__":
    sys.exit(run())
