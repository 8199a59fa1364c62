"""Admin password: scrypt hashes, where the configured hash comes from, the sign-in gate and the admin session.

There is no default password.  The hash (never the password) comes from, first match wins:

- the environment variable ``MOESEARCH_ADMIN_PASSWORD_HASH`` (``app.settings``),
- Streamlit secrets (``.streamlit/secrets.toml``): ``MOESEARCH_ADMIN_PASSWORD_HASH = "scrypt$..."``,
- ``DATA_DIR/app/admin_password.hash`` (0600): made on the first start of ``python -m app.server`` (what
  ``scripts/run.sh`` runs) with a random password printed once on the server's console, or by
  ``python -m app.auth --set`` (asks for a password); read on every page view, so a change needs no restart.

``python -m app.auth`` prints a hash for the environment variable (``--stdin`` reads the password from a pipe)::

    export MOESEARCH_ADMIN_PASSWORD_HASH="$(python -m app.auth)"

A sign-in makes a session token (``app.session``) kept in this Streamlit session and, through a one-time ticket
swapped by ``app.server``'s route, in an http-only cookie: a reload or a new tab is still signed in (``main.py``
calls ``refresh_admin`` on every run), until the token expires, the admin signs out (revoked everywhere) or the
password changes.  Sign-in failures are throttled per client address (``app.throttle``).

Hash format: ``scrypt$N$r$p$<salt hex>$<key hex>`` (stdlib ``hashlib.scrypt``, 16-byte random salt, 32-byte key).
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import hmac
import json
import logging
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .session import COOKIE, Sessions, create_private, sessions_for, write_private
from .settings import AppSettings, app_folder
from .throttle import LOCAL, THROTTLE, Throttle, client_address, client_key, is_loopback

__all__ = ["ENV_VAR", "THROTTLE", "Throttle", "client_address", "configured_hash", "fingerprint", "is_admin",
           "make_hash", "refresh_admin"]
log = logging.getLogger(__name__)
ENV_VAR = "MOESEARCH_ADMIN_PASSWORD_HASH"
HASH_FILE = "admin_password.hash"
SESSION_PATH = "/api/session"  # app.server's route that sets and clears the cookie
SCHEME = "scrypt"
DEFAULT_N, DEFAULT_R, DEFAULT_P = 2**14, 8, 1
FAILURE_DELAY = 0.5  # seconds after each wrong password (scrypt already costs ~50 ms a try)
MIN_PASSWORD = 12  # characters, for new hashes (``python -m app.auth``)
MAX_FAILURES = THROTTLE.free
STATE_TOKEN, STATE_TICKET, STATE_CLEAR = "admin_token", "admin_ticket", "admin_clear_cookie"
pause = time.sleep  # the sign-in's waits (tests record them instead)
HOW_TO = f"""Start the app with `bash scripts/run.sh` (it runs `.venv/bin/python -m app.server`): on its first start it
makes an admin password and prints it once on the server's console; only its hash is kept, in
`DATA_DIR/app/{HASH_FILE}`. To choose your own password (every admin is signed out; no restart needed):

```bash
.venv/bin/python -m app.auth --set   # asks for the password twice, stores its hash in the data folder
```

or set `{ENV_VAR}="$(.venv/bin/python -m app.auth)"` in the app's environment (or that key in
`.streamlit/secrets.toml`), which wins over the stored hash. The password itself is never stored."""


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


# --- where the hash comes from ---------------------------------------------------------------------------------
def hash_file(folder: Path | None = None) -> Path:
    return (folder or app_folder()) / HASH_FILE


def configured_hash(secrets_reader=None, folder: Path | None = None) -> tuple[str | None, str]:
    """The configured hash text and where it came from (``(None, "")`` when none is set)."""
    value = AppSettings.from_env().admin_password_hash
    if value:
        return value.strip(), f"environment variable {ENV_VAR}"
    if secrets_reader is not None:
        try:
            value = str(secrets_reader(ENV_VAR) or "").strip()
        except Exception:  # no secrets.toml, or it does not parse: treat as not configured
            value = ""
        if value:
            return value, f"Streamlit secret {ENV_VAR}"
    path = hash_file(folder)
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        return None, ""
    except OSError as exc:
        log.warning("cannot read the admin password hash in %s: %s", path, exc)
        return None, ""
    return (value, f"file {path}") if value else (None, "")


def fingerprint(hash_text: str) -> str:
    """Identifies the configured hash in session state and in session tokens, so changing it signs everyone out."""
    return hashlib.sha256(hash_text.encode()).hexdigest()[:16]


def first_run_password(folder: Path) -> str | None:
    """Make a random admin password and store its hash in ``folder`` unless a hash is stored there already;
    returns the new password (to print once) or None."""
    path = hash_file(folder)
    if path.exists():
        return None
    password = secrets.token_urlsafe(18)  # 24 characters, 144 random bits
    return password if create_private(path, (make_hash(password) + "\n").encode()) else None


def store_hash(text: str, folder: Path | None = None) -> Path:
    PasswordHash.parse(text)
    path = hash_file(folder)
    write_private(path, (text.strip() + "\n").encode())
    return path


# --- the admin session (Streamlit) -------------------------------------------------------------------------------
def _read_secret(name: str):
    import streamlit as st

    return st.secrets.get(name)


def session_keeper() -> Sessions | None:
    """The process's session keeper, or None where the data folder cannot hold its key (then a sign-in lasts as
    long as the browser session, as before)."""
    try:
        return sessions_for(app_folder(), AppSettings.from_env().session_seconds)
    except (OSError, ValueError) as exc:
        log.warning("admin sign-ins will not survive a reload: %s", exc)
        return None


def refresh_admin() -> bool:
    """Whether this session is signed in as the admin (with the hash configured now): its own token, still valid,
    or else the browser's session cookie.  Clears a stale sign-in; renders nothing."""
    import streamlit as st

    state = st.session_state
    text, _ = configured_hash(_read_secret)
    current = fingerprint(text) if text is not None else None
    token, cookie = state.get(STATE_TOKEN), st.context.cookies.get(COOKIE)
    keeper = session_keeper() if current is not None and (token or cookie) else None
    if current is not None and state.get("admin") == current and (token is None or keeper is None or
                                                                  keeper.verify(token, current)):
        return True
    state.pop("admin", None)
    state.pop(STATE_TOKEN, None)
    if keeper is not None and keeper.verify(cookie, current):
        state["admin"], state[STATE_TOKEN] = current, cookie
        return True
    return False


def is_admin() -> bool:
    return refresh_admin()


def _cookie_script(method: str, body: dict | None = None) -> None:
    """Ask ``app.server``'s route to set (POST, with a ticket) or clear (DELETE) the http-only session cookie."""
    import streamlit as st

    options = {"method": method, "credentials": "same-origin", "cache": "no-store"}
    if body is not None:
        options.update(headers={"Content-Type": "application/json"}, body=json.dumps(body))
    st.html(f"<script>fetch({json.dumps(SESSION_PATH)}, {json.dumps(options)}).catch(() => null);</script>",
            width="content", unsafe_allow_javascript=True)


def admin_gate() -> bool:
    """Render the sign-in form (or the not-configured page) unless this session is signed in; True if it is."""
    import streamlit as st

    state = st.session_state
    if state.pop(STATE_CLEAR, False):
        _cookie_script("DELETE")
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
    if refresh_admin():
        return True
    st.title("Admin sign-in")
    st.caption("Ingesting and deleting documents is for admins.")
    with st.form("login"):
        password = st.text_input("Password", type="password", key="password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if not submitted:
        return False
    client = client_key(client_address())
    wait = THROTTLE.wait(client)
    if wait > 0:  # checked before the password: a locked-out guess is never tried
        st.error(f"Too many wrong passwords: try again in {wait:.0f} s.")
        return False
    pause(THROTTLE.delay())  # many failures from many addresses: every sign-in slows down (bounded)
    if password and stored.verify(password):
        THROTTLE.succeeded(client)
        _signed_in(fingerprint(text))
        st.rerun()
    pause(FAILURE_DELAY)
    wait = THROTTLE.failed(client)
    message = "Wrong password." if password else "Enter the admin password."
    st.error(f"{message} Too many wrong passwords: try again in {wait:.0f} s." if wait > 0 else message)
    return False


def _signed_in(current: str) -> None:
    import streamlit as st

    state = st.session_state
    state["admin"] = current
    keeper = session_keeper()
    if keeper is not None:
        token = keeper.issue(current)
        state[STATE_TOKEN], state[STATE_TICKET] = token, keeper.ticket(token)


def sign_out() -> None:
    """Revoke this session's token (every tab and reload holding it is signed out) and clear the cookie."""
    import streamlit as st

    state = st.session_state
    token = state.pop(STATE_TOKEN, None)
    text, _ = configured_hash(_read_secret)
    keeper = session_keeper() if token and text is not None else None
    if keeper is not None:
        keeper.revoke(token, fingerprint(text))
    state.pop("admin", None)
    state.pop(STATE_TICKET, None)
    state[STATE_CLEAR] = True


def sign_out_button() -> None:
    """The sign-out button; right after a sign-in it also has the browser swap its ticket for the cookie."""
    import streamlit as st

    ticket = st.session_state.pop(STATE_TICKET, None)
    if ticket:
        _cookie_script("POST", {"ticket": ticket})
    st.button("Sign out", key="sign-out", on_click=sign_out, icon=":material/logout:", type="tertiary")


def is_local() -> bool:
    """Whether this session's browser runs on the server's machine (loopback, or no connection at all)."""
    client = client_address()
    return client == LOCAL or is_loopback(client)


# --- command line ------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.auth", description=f"Print an admin password hash for "
                                     f"{ENV_VAR}, or with --set store it in the data folder.")
    parser.add_argument("--stdin", action="store_true", help="read the password from standard input (one line)")
    parser.add_argument("--set", action="store_true", help=f"store the hash in DATA_DIR/app/{HASH_FILE} (replaces "
                        "the one made on first start; signs every admin out) instead of printing it")
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
    if not args.set:
        print(make_hash(password))
        return 0
    path = store_hash(make_hash(password))
    print(f"stored the new admin password's hash in {path}; every admin is signed out", file=sys.stderr)
    if AppSettings.from_env().admin_password_hash:
        print(f"note: {ENV_VAR} is set in this environment and wins over the stored hash where it is set too",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
