"""Sign-in that cannot be turned against the admin: addresses come from the socket unless the peer is a trusted
proxy (forged X-Forwarded-For gains nothing), and failures from many addresses slow sign-in down by a bounded delay
but never lock the right password out (an injected clock instead of real waiting).  And the sample corpus, the
one thing offered without sign-in: only on this machine, only into an empty index."""

from __future__ import annotations

import itertools

import pytest
from app_helpers import PASSWORD, open_page, sign_in, texts

from app import auth
from app.settings import parse_networks
from app.throttle import LOCAL, Throttle, client_key, is_loopback, resolve_client

PROXIES = parse_networks("10.0.0.5, 172.16.0.0/12, fd00::/8")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_forged_forwarded_for_is_ignored_from_an_untrusted_peer():
    for forged in ("1.2.3.4", "1.2.3.4, 5.6.7.8", "garbage", ""):
        assert resolve_client("198.51.100.7", forged, ()) == "198.51.100.7"
        assert resolve_client("198.51.100.7", forged, PROXIES) == "198.51.100.7"  # the peer is not a proxy
    assert resolve_client(LOCAL, "203.0.113.9", ()) == LOCAL  # a local process cannot pose as another host


def test_behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client():
    assert resolve_client("10.0.0.5", "203.0.113.9", PROXIES) == "203.0.113.9"
    # a client that sends its own X-Forwarded-For: the proxy appends the real address; the forged part is left of it
    assert resolve_client("10.0.0.5", "1.1.1.1, 203.0.113.9", PROXIES) == "203.0.113.9"
    # two proxies in a row (both trusted): skip them, right to left
    assert resolve_client("10.0.0.5", "1.1.1.1, 203.0.113.9, 172.20.0.2", PROXIES) == "203.0.113.9"
    assert resolve_client("10.0.0.5", "172.20.0.3, 172.20.0.2", PROXIES) == "172.20.0.3"  # all trusted: left-most
    assert resolve_client("10.0.0.5", None, PROXIES) == "10.0.0.5"  # no header: the proxy itself
    assert resolve_client("10.0.0.5", "203.0.113.9:5555", PROXIES) == "203.0.113.9"  # a port is dropped
    assert resolve_client("10.0.0.5", "[2001:db8::1]:443", PROXIES) == "2001:db8::1"
    assert resolve_client("fd00::1", "2001:db8::7", PROXIES) == "2001:db8::7"
    assert resolve_client("10.0.0.5", "unknown, 203.0.113.9", PROXIES) == "203.0.113.9"
    assert resolve_client("10.0.0.5", "203.0.113.9, not-an-ip", PROXIES) == "not-an-ip"  # cannot be checked: kept


def test_addresses_are_counted_per_host_and_ipv6_per_64():
    assert client_key("203.0.113.9") == "203.0.113.9"
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert client_key("::ffff:203.0.113.9") == "203.0.113.9"
    assert is_loopback(LOCAL) and is_loopback("::1") and not is_loopback("203.0.113.9")


def test_back_off_doubles_per_client_and_a_success_clears_it():
    clock = Clock()
    t = Throttle(free=3, base=10, cap=100, clock=clock)
    assert [t.failed("a") for _ in range(2)] == [0, 0] and t.wait("a") == 0
    assert t.failed("a") == 10  # the 3rd failure locks for 10 s
    assert t.wait("b") == 0  # another address is not locked by it
    clock.now += 10
    assert t.wait("a") == 0 and t.failed("a") == 20 and t.failed("a") == 40
    clock.now += 40
    for _ in range(5):
        t.failed("a")
    assert t.wait("a") == 100  # capped
    t.succeeded("a")
    assert t.wait("a") == 0


def test_a_distributed_guessing_run_slows_sign_in_but_never_locks_the_admin_out():
    clock = Clock()
    t = Throttle(free=5, base=60, cap=3600, global_free=20, window=600, step=0.5, max_delay=5, clock=clock)
    delays = []
    for i in range(2000):  # 2,000 guesses from 500 addresses, 4 each (under the per-address limit), 0.1 s apart
        address = f"10.{i % 500 // 250}.{i % 250}.1"
        delays.append(t.delay())
        t.failed(address)
        clock.now += 0.1
    assert delays[:20] == [0.0] * 20  # the first 20 failures cost nothing extra
    assert max(delays) == 5 and delays == sorted(delays)  # then slower and slower, never more than 5 s
    admin = "192.0.2.10"
    assert t.wait(admin) == 0 and t.delay() == 5  # the admin waits 5 s at most, never a lockout
    t.succeeded(admin)
    assert len(t._recent) <= t._recent.maxlen  # bounded memory however long the run
    clock.now += 601  # the run stops: the window empties, sign-in is fast again
    assert t.delay() == 0


def test_an_address_that_fails_is_locked_whatever_the_others_do():
    clock = Clock()
    t = Throttle(free=5, base=60, cap=3600, global_free=20, clock=clock)
    for _ in range(5):
        t.failed("198.51.100.7")
    assert t.wait("198.51.100.7") == 60 and t.wait("192.0.2.10") == 0


def test_remembered_addresses_are_bounded_and_locked_ones_kept():
    clock = Clock()
    t = Throttle(free=2, base=60, max_clients=100, forget=3600, clock=clock)
    t.failed("locked")
    t.failed("locked")
    for i in range(300):
        t.failed(f"10.0.{i // 250}.{i % 250}")
        clock.now += 0.01
    assert len(t) <= 100 and t.wait("locked") > 0
    clock.now += 2 * 24 * 3600  # long idle (and the lock over): starts afresh
    assert t.failed("locked") == 0


def test_the_gate_under_a_distributed_run_admits_the_right_password(app_env, monkeypatch, admin_hash):
    """The sign-in page itself: 12 wrong passwords from 12 addresses (AppTest sessions), then the admin from another
    address gets in, having waited only the bounded delay (sleeps recorded, not slept)."""
    clock = Clock()
    throttle = Throttle(free=5, base=60, cap=3600, global_free=4, window=600, step=0.5, max_delay=2, clock=clock)
    slept: list[float] = []
    calls = itertools.count()  # every look at the address is a new one (the search page looks too)
    monkeypatch.setenv(auth.ENV_VAR, admin_hash)
    monkeypatch.setattr(auth, "THROTTLE", throttle)
    monkeypatch.setattr(auth, "client_address", lambda: f"203.0.{next(calls)}.1")
    monkeypatch.setattr(auth, "pause", slept.append)
    for i in range(12):
        at = sign_in(open_page("views/ingest.py"), f"wrong guess {i}")
        assert "Wrong password." in texts(at.error) and "Too many" not in texts(at.error)
        clock.now += 1
    assert throttle.delay() == 2
    at = sign_in(open_page("views/ingest.py"), PASSWORD)
    assert not at.error and at.file_uploader
    global_delays = slept[::2]  # each attempt: the global delay, then (when wrong) FAILURE_DELAY
    assert len(global_delays) == 13 and set(slept[1::2]) == {auth.FAILURE_DELAY}
    assert global_delays[:4] == [0.0] * 4 and max(global_delays) == 2 == global_delays[-1]


@pytest.mark.parametrize("local", [True, False])
def test_the_sample_corpus_is_offered_without_sign_in_only_on_this_machine(app_env, monkeypatch, local):
    monkeypatch.setattr(auth, "client_address", lambda: LOCAL if local else "203.0.113.9")
    at = open_page()
    offered = any(b.label == "Load the sample corpus" for b in at.button)
    assert offered == local
    assert ("An admin can load it" in texts(at.caption)) != local


def test_the_sample_corpus_loads_only_into_an_empty_index(app_env):
    from app.sample import sample_files
    from app.service import NotEmpty, get_service

    service = get_service()
    job = service.start_sample()
    assert job.wait(120) and job.result.ok == len(sample_files())
    with pytest.raises(NotEmpty):
        service.start_sample()
