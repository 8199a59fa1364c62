"""Admin password: scrypt hashes, where the configured hash comes from, and the login gate.

There is no default password.  An admin sets a *hash* (never the password itself) in one of:

- the environment variable ``MOESEARCH_ADMIN_PASSWORD_HASH``, or
- Streamlit secrets (``.streamlit/secrets.toml``): ``MOESEARCH_ADMIN_PASSWORD_HASH = "scrypt$..."``.

Make a hash with ``python -m app.auth`` (asks for the password twice; ``--stdin`` reads it from a pipe)::

    export MOESEARCH_ADMIN_PASSWORD_HASH="$(python -m app.auth)"

Hash format: ``scrypt$N$r$p$<salt hex>$<key hex>`` (stdlib ``hashlib.scrypt``, 16-byte random salt, 32-byte key).
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import hmac
import os
import secrets
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass

ENV_VAR = "MOESEARCH_ADMIN_PASSWORD_HASH"
SCHEME = "scrypt"
DEFAULT_N, DEFAULT_R, DEFAULT_P = 2**14, 8, 1
MAX_FAILURES, LOCKOUT_SECONDS, FAILURE_DELAY = 5, 60.0, 0.5
MAX_LOCKOUT = 3600.0  # the back-off doubles per failure past MAX_FAILURES, up to this
GLOBAL_FAILURES, GLOBAL_WINDOW = 30, 600.0  # this many failures from all clients within the window lock everyone
MIN_PASSWORD = 12  # characters, for new hashes (``python -m app.auth``)
HOW_TO = f"""Set an admin password hash, then restart the app:

```bash
export {ENV_VAR}="$(.venv/bin/python -m app.auth)"   # asks for the password twice
.venv/bin/streamlit run app/main.py
```

or put `{ENV_VAR} = "scrypt$..."` (the printed hash) in `.streamlit/secrets.toml`.
The password itself is never stored; there is no default password."""


@dataclass(frozen=True)
class PasswordHash:
    n: int
    r: int
    p: int
    salt: bytes
    key: bytes

    def __post_init__(self) -> None:
        if self.n < 2 or self.n & (self.n - 1):
            raise ValueError(f"scrypt N must be a power of two >= 2, got {self.n}")
        if not 1 <= self.r <= 64 or not 1 <= self.p <= 16:
            raise ValueError(f"scrypt r must be in 1..64 and p in 1..16, got r={self.r} p={self.p}")
        if len(self.salt) < 8 or len(self.key) < 16:
            raise ValueError("salt must be >= 8 bytes and key >= 16 bytes")

    @classmethod
    def parse(cls, text: str) -> PasswordHash:
        parts = text.strip().split("$")
        if len(parts) != 6 or parts[0] != SCHEME:
            raise ValueError(f"expected '{SCHEME}$N$r$p$salt$key' (made by `python -m app.auth`), got "
                             f"{len(parts)} '$'-separated fields starting with {parts[0][:10]!r}")
        try:
            return cls(int(parts[1]), int(parts[2]), int(parts[3]), bytes.fromhex(parts[4]), bytes.fromhex(parts[5]))
        except ValueError as exc:
            raise ValueError(f"malformed {SCHEME} hash: {exc}") from None

    def format(self) -> str:
        return f"{SCHEME}${self.n}${self.r}${self.p}${self.salt.hex()}${self.key.hex()}"

    def derive(self, password: str) -> bytes:
        return hashlib.scrypt(password.encode("utf-8"), salt=self.salt, n=self.n, r=self.r, p=self.p,
                              maxmem=256 * 1024 * 1024, dklen=len(self.key))

    def verify(self, password: str) -> bool:
        return hmac.compare_digest(self.derive(password), self.key)


def make_hash(password: str, n: int = DEFAULT_N, r: int = DEFAULT_R, p: int = DEFAULT_P) -> str:
    if not password:
        raise ValueError("the password is empty")
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=32)
    return PasswordHash(n, r, p, salt, key).format()


def configured_hash(secrets_reader=None) -> tuple[str | None, str]:
    """The configured hash text and where it came from (``(None, "")`` when none is set)."""
    value = os.environ.get(ENV_VAR, "").strip()
    if value:
        return value, f"environment variable {ENV_VAR}"
    if secrets_reader is not None:
        try:
            value = str(secrets_reader(ENV_VAR) or "").strip()
        except Exception:  # no secrets.toml, or it does not parse: treat as not configured
            value = ""
        if value:
            return value, f"Streamlit secret {ENV_VAR}"
    return None, ""


def fingerprint(hash_text: str) -> str:
    """Identifies the configured hash in session state, so changing it logs every session out."""
    return hashlib.sha256(hash_text.encode()).hexdigest()[:16]


# --- throttling (one per server process, shared by every session) -----------------------------------------------
class Throttle:
    """Sign-in failures counted per client address and over all clients, in the server process (so a reload, a
    new browser context or a parallel session does not start afresh).  A client may fail ``free`` times; each
    failure after that locks it out for ``base`` s, doubling each time (at most ``cap``); a success clears its
    count.  ``global_max`` failures from all clients within ``window`` s lock everyone out until the oldest of
    them leaves the window (a guesser spread over many addresses)."""

    def __init__(self, free: int = MAX_FAILURES, base: float = LOCKOUT_SECONDS, cap: float = MAX_LOCKOUT,
                 global_max: int = GLOBAL_FAILURES, window: float = GLOBAL_WINDOW, clock=time.monotonic):
        self.free, self.base, self.cap, self.global_max, self.window = free, base, cap, global_max, window
        self.clock = clock
        self._lock = threading.Lock()
        self._clients: dict[str, tuple[int, float]] = {}  # client -> (failures, locked until)
        self._recent: deque[float] = deque()  # times of the latest failures (all clients)

    def wait(self, client: str) -> float:
        """Seconds before ``client`` may try again (0: now)."""
        now = self.clock()
        with self._lock:
            self._expire(now)
            until = self._clients.get(client, (0, 0.0))[1]
            if len(self._recent) >= self.global_max:
                until = max(until, self._recent[0] + self.window)
        return max(0.0, until - now)

    def failed(self, client: str) -> float:
        """Record a failed attempt; returns the wait it leads to."""
        now = self.clock()
        with self._lock:
            self._expire(now)
            failures, until = self._clients.get(client, (0, 0.0))
            failures += 1
            if failures >= self.free:
                until = now + min(self.cap, self.base * 2 ** (failures - self.free))
            self._clients[client] = (failures, until)
            self._recent.append(now)
        return self.wait(client)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._clients.pop(client, None)

    def reset(self) -> None:
        with self._lock:
            self._clients.clear()
            self._recent.clear()

    def _expire(self, now: float) -> None:
        while self._recent and now - self._recent[0] > self.window:
            self._recent.popleft()


THROTTLE = Throttle()


def client_address() -> str:
    """The browser's address as the server sees it (the first X-Forwarded-For hop behind a proxy)."""
    import streamlit as st

    try:
        forwarded, ip = st.context.headers.get("X-Forwarded-For"), st.context.ip_address
    except Exception:  # no browser connection (bare script runs)
        return "unknown"
    forwarded = forwarded.split(",")[0].strip() if isinstance(forwarded, str) else ""
    return forwarded or (ip if isinstance(ip, str) else "") or "unknown"  # None on localhost; not a str in AppTest


def is_admin() -> bool:
    """Whether this session is signed in as the admin (with the hash configured now); renders nothing."""
    import streamlit as st

    text, _ = configured_hash(_read_secret)
    return text is not None and st.session_state.get("admin") == fingerprint(text)


# --- the gate (Streamlit) ----------------------------------------------------------------------------------------
def _read_secret(name: str):
    import streamlit as st

    return st.secrets.get(name)


def admin_gate() -> bool:
    """Render the login form (or the not-configured page) unless this session is logged in; True if it is."""
    import streamlit as st

    text, origin = configured_hash(_read_secret)
    if text is None:
        st.title("Admin sign-in is not set up")
        st.warning("Ingesting documents needs an admin password, and none is configured on this server.")
        st.markdown(HOW_TO)
        return False
    try:
        stored = PasswordHash.parse(text)
    except ValueError as exc:
        st.title("Admin sign-in is misconfigured")
        st.error(f"The {origin} is set but is not a valid password hash: {exc}")
        st.markdown(HOW_TO)
        return False
    state = st.session_state
    if state.get("admin") == fingerprint(text):
        return True
    st.title("Admin sign-in")
    st.caption("Ingesting and deleting documents is for admins.")
    with st.form("login"):
        password = st.text_input("Password", type="password", key="password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if not submitted:
        return False
    client = client_address()
    wait = THROTTLE.wait(client)
    if wait > 0:  # checked before the password: a locked-out guess is never tried
        st.error(f"Too many wrong passwords: try again in {wait:.0f} s.")
        return False
    if password and stored.verify(password):
        THROTTLE.succeeded(client)
        state["admin"] = fingerprint(text)
        st.rerun()
    time.sleep(FAILURE_DELAY)  # slows guessing down; scrypt already costs ~50 ms a try
    wait = THROTTLE.failed(client)
    message = "Wrong password." if password else "Enter the admin password."
    st.error(f"{message} Too many wrong passwords: try again in {wait:.0f} s." if wait > 0 else message)
    return False


def sign_out_button() -> None:
    import streamlit as st

    def sign_out() -> None:
        st.session_state.pop("admin", None)

    st.button("Sign out", key="sign-out", on_click=sign_out, icon=":material/logout:", type="tertiary")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.auth", description="Print an admin password hash for "
                                     f"{ENV_VAR}.")
    parser.add_argument("--stdin", action="store_true", help="read the password from standard input (one line)")
    args = parser.parse_args(argv)
    if args.stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Admin password: ")
        if getpass.getpass("Again: ") != password:
            print("the passwords differ", file=sys.stderr)
            return 2
    if len(password) < MIN_PASSWORD:
        print(f"use at least {MIN_PASSWORD} characters", file=sys.stderr)
        return 2
    print(make_hash(password))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
