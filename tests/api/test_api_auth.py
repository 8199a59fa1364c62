"""Auth on every write endpoint (read from the OpenAPI schema, so a new write endpoint is covered), revocation,
the hashed token file, and read endpoints under MOESEARCH_API_READ_AUTH=token."""

from __future__ import annotations

import json
import stat

import pytest

from api import ApiSettings
from api.tokens import PREFIX, TokenStore

EXAMPLE = {"doc_id": "0" * 64, "job_id": "0" * 32}


def _operations(client):
    spec = client.get("/openapi.json").json()
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            yield method.upper(), path, op


def _call(client, method: str, path: str, headers: dict | None = None):
    url = path.format(**EXAMPLE)
    if path == "/ingest":
        return client.request(method, url, files=[("files", ("a.txt", b"some words to index"))], headers=headers)
    body = {"target": "nothing"} if path == "/documents/delete" else {"path": "/nowhere"}
    if path == "/ingest/paths":
        body = {"paths": ["/nowhere"]}
    if path == "/reindex":
        body = {}
    if path == "/sync/rescan":
        body = {}
    return client.request(method, url, json=body if method == "POST" else None, headers=headers)


def test_every_write_endpoint_is_admin_only_and_documented_so(client, auth):
    writes = [(m, p) for m, p, _ in _operations(client) if m != "GET"]
    secured = {(m, p) for m, p, op in _operations(client) if op.get("security")}
    assert len(writes) >= 8 and set(writes) <= secured, set(writes) - secured
    for method, path in sorted(secured):
        for headers in (None, {"Authorization": "Bearer " + PREFIX + "not-a-token"}, {"Authorization": "Basic x"}):
            response = _call(client, method, path, headers)
            assert response.status_code == 401, (method, path, response.text)
            assert response.json()["error"]["code"] == "unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"
        response = _call(client, method, path, auth)
        assert response.status_code != 401, (method, path, response.text)


def test_a_revoked_token_stops_working_at_once(client, settings):
    store = TokenStore(settings.data_dir)
    token = store.create("short-lived")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/jobs", headers=headers).status_code == 200
    assert store.revoke("short-lived")
    response = client.get("/jobs", headers=headers)
    assert response.status_code == 401 and "revoked" in response.json()["error"]["message"]


def test_tokens_are_kept_hashed_in_a_private_file(settings):
    store = TokenStore(settings.data_dir)
    token = store.create("ops")
    raw = store.path.read_text()
    assert token not in raw and json.loads(raw)[0]["name"] == "ops"
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    with pytest.raises(ValueError, match="exists"):
        store.create("ops")
    with pytest.raises(ValueError, match="token name"):
        store.create("no spaces please")
    assert store.verify(token).name == "ops" and store.verify(token + "x") is None


def test_read_endpoints_need_a_token_when_configured(pipeline, settings, make_client, auth):
    runtime, client = make_client(pipeline, settings, ApiSettings(read_auth="token"))
    try:
        refused = client.get("/search", params={"q": "anything"})
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
        assert client.get("/search", params={"q": "anything"}, headers=auth).status_code == 200
        assert client.get("/health").status_code == 200  # probes stay open
    finally:
        runtime.close()


def test_open_reads_hide_server_paths(client, auth):
    assert "shown to token holders" in client.get("/stats").json()["location"]
    assert "shown to token holders" not in client.get("/stats", headers=auth).json()["location"]
