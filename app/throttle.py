"""Who is signing in and how often they failed: the client's address (the socket peer, or behind a configured
reverse proxy the right-most X-Forwarded-For hop that is not a trusted proxy) and the sign-in throttle.

A header is never believed from an untrusted peer, so forging ``X-Forwarded-For`` gains nothing: the failures are
counted against the socket address.  IPv6 clients are counted per /64 (what one household or host gets).

The throttle has two parts, neither of which can lock the right password out for longer than the per-address
back-off: each address may fail ``free`` times, then waits ``base`` s, doubling per failure (at most ``cap``); and
failures from all addresses together (a guesser spread over many addresses) slow every sign-in down by a bounded
delay (``step`` s per failure past ``global_free`` within ``window`` s, at most ``max_delay``), instead of locking
everyone out.  Kept in the server process, shared by every session: a reload, a new browser or a parallel session
does not start afresh.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import deque
from collections.abc import Sequence

from .settings import AppSettings, Network

MAX_FAILURES, LOCKOUT_SECONDS, MAX_LOCKOUT = 5, 60.0, 3600.0  # per address: free failures, first lock, cap
GLOBAL_FREE, GLOBAL_WINDOW = 20, 600.0  # failures from all addresses in the window before sign-in slows down
GLOBAL_STEP, GLOBAL_MAX_DELAY = 0.5, 5.0  # seconds added per failure past GLOBAL_FREE, and the bound
FORGET_SECONDS = 24 * 3600.0  # an address idle (and not locked) this long starts afresh
MAX_CLIENTS = 100_000  # addresses remembered; past it the longest-idle unlocked ones are forgotten
LOCAL = "127.0.0.1"  # what a loopback client (or a run without a browser connection) is counted as


class Throttle:
    """Sign-in failures per client address and over all addresses (the module docstring has the rules)."""

    def __init__(self, free: int = MAX_FAILURES, base: float = LOCKOUT_SECONDS, cap: float = MAX_LOCKOUT,
                 global_free: int = GLOBAL_FREE, window: float = GLOBAL_WINDOW, step: float = GLOBAL_STEP,
                 max_delay: float = GLOBAL_MAX_DELAY, forget: float = FORGET_SECONDS, max_clients: int = MAX_CLIENTS,
                 clock=time.monotonic):
        self.free, self.base, self.cap = free, base, cap
        self.global_free, self.window, self.step, self.max_delay = global_free, window, step, max_delay
        self.forget, self.max_clients, self.clock = forget, max_clients, clock
        self._lock = threading.Lock()
        self._clients: dict[str, tuple[int, float, float]] = {}  # client -> (failures, locked until, last failure)
        # Times of the latest failures from all clients: only as many as it takes to reach the largest delay.
        self._recent: deque[float] = deque(maxlen=global_free + math.ceil(max_delay / step) if step > 0 else
                                           global_free + 1)

    def wait(self, client: str) -> float:
        """Seconds before ``client`` may try again (0: now).  Only its own failures count here."""
        now = self.clock()
        with self._lock:
            until = self._clients.get(client, (0, 0.0, 0.0))[1]
        return max(0.0, until - now)

    def delay(self) -> float:
        """Seconds every sign-in is slowed down by now (failures from all addresses); at most ``max_delay``."""
        now = self.clock()
        with self._lock:
            self._expire(now)
            over = len(self._recent) - self.global_free + 1
        return 0.0 if over <= 0 else min(self.max_delay, self.step * over)

    def failed(self, client: str) -> float:
        """Record a failed attempt; returns the wait it leads to for ``client``."""
        now = self.clock()
        with self._lock:
            self._expire(now)
            failures, until, last = self._clients.get(client, (0, 0.0, 0.0))
            if failures and until <= now and now - last > self.forget:
                failures = 0  # idle long enough: starts afresh
            failures += 1
            if failures >= self.free:
                until = now + min(self.cap, self.base * 2 ** min(failures - self.free, 64))
            self._clients[client] = (failures, until, now)
            self._recent.append(now)
            if len(self._clients) > self.max_clients:
                self._evict(now)
        return max(0.0, until - now)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._clients.pop(client, None)

    def reset(self) -> None:
        with self._lock:
            self._clients.clear()
            self._recent.clear()

    def __len__(self) -> int:
        return len(self._clients)

    def _expire(self, now: float) -> None:
        while self._recent and now - self._recent[0] > self.window:
            self._recent.popleft()

    def _evict(self, now: float) -> None:
        """Forget addresses idle past ``forget``, then the longest-idle ones, until 90% of ``max_clients`` are left
        (an address that is locked now is kept; the margin spreads the sort over many failures)."""
        idle = sorted((last, c) for c, (_, until, last) in self._clients.items() if until <= now)
        over = len(self._clients) - self.max_clients * 9 // 10
        for n, (last, client) in enumerate(idle):
            if n < over or now - last > self.forget:
                del self._clients[client]


THROTTLE = Throttle()


# --- the client's address ------------------------------------------------------------------------------------------
def _address(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = (text or "").strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(address, networks: Sequence[Network]) -> bool:
    return address is not None and any(address in n for n in networks)


def resolve_client(peer: str | None, forwarded: str | None, networks: Sequence[Network]) -> str:
    """The client's address: the socket ``peer``, unless the peer is a trusted proxy; then the right-most hop of
    ``X-Forwarded-For`` that is not a trusted proxy (all trusted: the left-most).  A hop that is not an IP address
    ends the walk (it cannot be checked against the list), and is used as it is."""
    address = _address(peer)
    if address is None:
        return peer or LOCAL
    if not forwarded or not _trusted(address, networks):
        return str(address)
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    for hop in reversed(hops):
        hop_address = _address(hop)
        if hop_address is None:
            return hop[:100]
        if not _trusted(hop_address, networks):
            return str(hop_address)
    return str(_address(hops[0])) if hops else str(address)


def client_key(client: str) -> str:
    """What failures are counted against: the address, an IPv6 address's /64."""
    address = _address(client)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address) if address is not None else client


def is_loopback(client: str) -> bool:
    address = _address(client)
    return address is not None and address.is_loopback


def client_address(settings: AppSettings | None = None) -> str:
    """The browser's address for this session (``LOCAL`` for a loopback connection or no connection at all)."""
    import streamlit as st

    try:
        peer, forwarded = st.context.ip_address, st.context.headers.get("X-Forwarded-For")
    except Exception:  # no browser connection (bare script runs)
        return LOCAL
    networks = (settings or AppSettings.from_env()).networks
    if not (isinstance(peer, str) and peer):  # Streamlit says None for 127.0.0.1 and ::1 alike
        peer = "::1" if _trusted(_address("::1"), networks) and not _trusted(_address(LOCAL), networks) else LOCAL
    forwarded = forwarded if isinstance(forwarded, str) else None
    return resolve_client(peer, forwarded, networks)
