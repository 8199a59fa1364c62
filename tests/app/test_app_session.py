"""Admin sessions: tokens signed, expiring, revocable and bound to the password; the key and the first-run password
kept 0600 in the data folder; the cookie route (http-only, one-time tickets); the launcher's settings."""

from __future__ import annotations

import io
import os
import stat

import pytest

from app import auth
from app.session import COOKIE, KEY_FILE, REVOKED_FILE, TICKET_SECONDS, Sessions, sessions_for
from app.settings import AppSettings


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def keeper(tmp_path):
    return Sessions(tmp_path / "app", lifetime=3600, clock=Clock())


def test_a_token_verifies_for_its_password_until_it_expires(keeper):
    token = keeper.issue("fp-a")
    claims = keeper.verify(token, "fp-a")
    assert claims is not None and claims.expires == keeper.clock.now + 3600
    assert keeper.verify(token, "fp-b") is None  # another password: every old token stops working
    keeper.clock.now += 3599
    assert keeper.verify(token, "fp-a") is not None
    keeper.clock.now += 1
    assert keeper.verify(token, "fp-a") is None  # expired


def test_forged_and_altered_tokens_are_refused(keeper, tmp_path):
    token = keeper.issue("fp")
    version, token_id, expires, mac = token.split(".")
    later = f"{version}.{token_id}.{int(expires) + 10**6}.{mac}"  # a longer life, same signature
    other_id = f"{version}.{'A' * len(token_id)}.{expires}.{mac}"
    for bad in (later, other_id, token[:-2] + "AA", "", None, "v1.x.1.y", "v2" + token[2:], token + ".x", "x" * 300):
        assert keeper.verify(bad, "fp") is None, bad
    stranger = Sessions(tmp_path / "elsewhere", lifetime=3600, clock=keeper.clock)  # another key
    assert stranger.verify(token, "fp") is None and stranger.verify(stranger.issue("fp"), "fp")


def test_revocation_holds_across_restarts_and_is_pruned_after_expiry(tmp_path):
    clock = Clock()
    folder = tmp_path / "app"
    first = Sessions(folder, lifetime=100, clock=clock)
    a, b = first.issue("fp"), first.issue("fp")
    assert first.revoke(a, "fp") and not first.revoke(a, "fp")  # the second time: nothing to do
    assert not first.revoke("v1.forged.9999999999.abc", "fp")  # unsigned ids are never written to the file
    assert first.verify(a, "fp") is None and first.verify(b, "fp") is not None
    again = Sessions(folder, lifetime=100, clock=clock)  # a restart: same key, same revocations
    assert again.verify(a, "fp") is None and again.verify(b, "fp") is not None
    assert mode(folder / KEY_FILE) == 0o600 and mode(folder / REVOKED_FILE) == 0o600 and mode(folder) == 0o700
    clock.now += 101
    c = again.issue("fp")
    assert again.revoke(c, "fp")
    assert a.split(".")[1] not in (folder / REVOKED_FILE).read_text()  # expired ids leave the file


def test_tickets_are_single_use_and_short_lived(keeper):
    token = keeper.issue("fp")
    ticket = keeper.ticket(token)
    assert ticket != token and keeper.redeem(ticket) == token
    assert keeper.redeem(ticket) is None  # used
    late = keeper.ticket(token)
    keeper.clock.now += TICKET_SECONDS + 1
    assert keeper.redeem(late) is None and keeper.redeem("made-up") is None and keeper.redeem(None) is None


def test_a_short_key_file_is_refused(tmp_path):
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / KEY_FILE).write_bytes(b"short")
    with pytest.raises(ValueError, match="holds 5 bytes, fewer than the 32"):
        Sessions(folder, lifetime=10)


def test_first_run_password_is_stored_as_a_hash_once(tmp_path, monkeypatch):
    monkeypatch.delenv(auth.ENV_VAR, raising=False)
    folder = tmp_path / "app"
    password = auth.first_run_password(folder)
    assert password is not None and len(password) >= auth.MIN_PASSWORD
    stored = auth.hash_file(folder).read_text()
    assert password not in stored and auth.PasswordHash.parse(stored).verify(password)
    assert mode(auth.hash_file(folder)) == 0o600
    assert auth.first_run_password(folder) is None  # never a second one (nor printed again)
    text, origin = auth.configured_hash(None, folder)
    assert text == stored.strip() and "admin_password.hash" in origin
    other = auth.make_hash("an environment password")
    monkeypatch.setenv(auth.ENV_VAR, other)  # the environment wins over the stored hash
    assert auth.configured_hash(None, folder)[0] == other
    assert auth.configured_hash(lambda name: auth.make_hash("x" * 12), folder)[0] == other


def test_the_server_prints_the_first_password_once(tmp_path, monkeypatch, capsys):
    from app.server import announce_first_password

    monkeypatch.delenv(auth.ENV_VAR, raising=False)
    folder = tmp_path / "app"
    password = announce_first_password(folder)
    out = capsys.readouterr().out
    assert password and password in out and "python -m app.auth --set" in out and auth.ENV_VAR in out
    assert announce_first_password(folder) is None  # a restart: where the hash is, never the password
    again = capsys.readouterr().out
    assert password not in again and "admin_password.hash" in again and "app.auth --set" in again
    monkeypatch.setenv(auth.ENV_VAR, auth.make_hash("configured elsewhere"))
    fresh = tmp_path / "fresh"
    assert announce_first_password(fresh) is None and not fresh.exists()


def test_auth_set_replaces_the_stored_hash(tmp_path, monkeypatch):
    monkeypatch.delenv(auth.ENV_VAR, raising=False)
    monkeypatch.setenv("MOESEARCH_DATA_DIR", str(tmp_path / "data"))
    folder = tmp_path / "data" / "app"
    auth.first_run_password(folder)
    before = auth.hash_file(folder).read_text()
    monkeypatch.setattr("sys.stdin", io.StringIO("my own admin password\n"))
    assert auth.main(["--stdin", "--set"]) == 0
    after = auth.hash_file(folder).read_text()
    assert after != before and auth.PasswordHash.parse(after).verify("my own admin password")
    assert mode(auth.hash_file(folder)) == 0o600


def test_settings_name_the_variable_on_a_bad_value():
    settings = AppSettings.from_env({"MOESEARCH_TRUSTED_PROXIES": " 10.0.0.1 , 192.168.0.0/16,::1",
                                     "MOESEARCH_SESSION_HOURS": "2"})
    assert settings.trusted_proxies == "10.0.0.1,192.168.0.0/16,::1" and settings.session_seconds == 7200
    with pytest.raises(ValueError, match="MOESEARCH_TRUSTED_PROXIES.*'example.com' is not an IP"):
        AppSettings.from_env({"MOESEARCH_TRUSTED_PROXIES": "example.com"})
    with pytest.raises(ValueError, match="MOESEARCH_SESSION_HOURS"):
        AppSettings.from_env({"MOESEARCH_SESSION_HOURS": "0"})


def test_the_launcher_tells_uvicorn_which_proxies_to_believe(monkeypatch):
    from app import server

    seen = {}
    monkeypatch.setattr(server.os, "execv", lambda exe, argv: seen.update(argv=argv, env=dict(os.environ)))
    monkeypatch.setenv("MOESEARCH_TRUSTED_PROXIES", "10.1.2.3")
    monkeypatch.setenv(server.FORWARDED_ENV, "*")  # uvicorn's own setting is overridden, never trusted as is
    server.main(["--server.port", "1"])
    assert seen["env"][server.FORWARDED_ENV] == "10.1.2.3"
    assert seen["argv"][1:4] == ["-m", "streamlit", "run"] and seen["argv"][4].endswith("app/server.py")
    assert seen["argv"][-2:] == ["--server.port", "1"]
    monkeypatch.delenv("MOESEARCH_TRUSTED_PROXIES")
    server.main([])
    assert seen["env"][server.FORWARDED_ENV] == ""  # nobody: X-Forwarded-For is never believed
    monkeypatch.setenv("MOESEARCH_TRUSTED_PROXIES", "nonsense")
    with pytest.raises(SystemExit, match="MOESEARCH_TRUSTED_PROXIES"):
        server.main([])


def test_the_cookie_route_swaps_a_ticket_once_and_sign_out_revokes(tmp_path, monkeypatch):
    from starlette.applications import Starlette
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from app.server import session_route

    hash_text = auth.make_hash("the route's password")
    monkeypatch.setenv(auth.ENV_VAR, hash_text)
    monkeypatch.setenv("MOESEARCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MOESEARCH_SESSION_HOURS", "1")
    keeper = auth.session_keeper()
    assert keeper is sessions_for(tmp_path / "data" / "app", 3600)
    current = auth.fingerprint(hash_text)
    token = keeper.issue(current)
    app = Starlette(routes=[Route(auth.SESSION_PATH, session_route, methods=["POST", "DELETE"])])
    with TestClient(app, base_url="https://moesearch.test") as client:
        assert client.post(auth.SESSION_PATH, json={"ticket": "made-up"}).status_code == 403
        assert client.post(auth.SESSION_PATH, content=b"not json").status_code == 403
        ticket = keeper.ticket(token)
        answer = client.post(auth.SESSION_PATH, json={"ticket": ticket})
        assert answer.status_code == 204 and answer.headers["cache-control"] == "no-store"
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}={token};")
        for attribute in ("HttpOnly", "SameSite=strict", "Path=/", "Secure"):
            assert attribute in cookie, cookie
        max_age = int(cookie.split("Max-Age=")[1].split(";")[0])
        assert 3590 <= max_age <= 3600
        assert client.post(auth.SESSION_PATH, json={"ticket": ticket}).status_code == 403  # used
        assert client.get(auth.SESSION_PATH).status_code == 405
        answer = client.delete(auth.SESSION_PATH, headers={"Cookie": f"{COOKIE}={token}"})
        assert answer.status_code == 204 and "Max-Age=0" in answer.headers["set-cookie"]
    assert keeper.verify(token, current) is None  # revoked: every tab and reload holding it is signed out
    with TestClient(app, base_url="http://127.0.0.1") as client:  # plain http: no Secure attribute
        answer = client.post(auth.SESSION_PATH, json={"ticket": keeper.ticket(keeper.issue(current))})
        assert answer.status_code == 204 and "Secure" not in answer.headers["set-cookie"]
