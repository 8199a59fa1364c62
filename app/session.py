"""Admin sign-ins that outlive a page load: signed, expiring session tokens (for an http-only cookie), their
revocation, and the one-time tickets that carry a new token from a Streamlit session into the cookie.

A token is ``v1.<id>.<expires>.<mac>``: a random id, the Unix time it expires, and
``HMAC-SHA256(key, "v1.<id>.<expires>.<fingerprint>")`` where the fingerprint identifies the admin password hash
configured now; so a token is good only until it expires, is revoked (sign-out), or the password changes (every
token made under the old one stops verifying).  The key is 32 random bytes in ``DATA_DIR/app/session.key`` (made on
first use, mode 0600), so sign-ins survive a restart; revoked ids are kept in ``revoked_sessions.json`` next to it
until they would have expired.  Nothing here knows about Streamlit or HTTP (``app.auth`` and ``app.server`` do).

A ticket is a random string the server maps to a token for ``TICKET_SECONDS``, redeemable once: the page that
signed in hands the ticket (never the token) to the browser, whose request to ``app.server``'s route swaps it for
the cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
COOKIE = "moesearch_admin"
VERSION = "v1"
KEY_FILE, REVOKED_FILE = "session.key", "revoked_sessions.json"
KEY_BYTES = 32
TICKET_SECONDS = 60.0
MAX_TICKETS = 1000


@dataclass(frozen=True)
class Claims:
    token_id: str
    expires: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def write_private(path: Path, data: bytes) -> None:
    """Write ``path`` atomically, readable by its owner only (0600); its folder is made 0700 if missing."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def create_private(path: Path, data: bytes) -> bool:
    """Create ``path`` (0600) with ``data`` unless it exists; False if it did (another process was first)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return True


def load_key(path: Path) -> bytes:
    """The signing key in ``path``, made (random, 0600) if there is none."""
    create_private(path, secrets.token_bytes(KEY_BYTES))
    key = path.read_bytes()
    if len(key) < KEY_BYTES:
        raise ValueError(f"{path} holds {len(key)} bytes, fewer than the {KEY_BYTES} of a session key: delete it "
                         "(every admin is then signed out) and restart")
    if path.stat().st_mode & 0o077:
        log.warning("%s can be read by other users: chmod 600 it", path)
    return key


class Sessions:
    """Issue, verify and revoke session tokens; swap one-time tickets for them.  Thread-safe (the server's event
    loop and the pages' script threads share one)."""

    def __init__(self, folder: Path, lifetime: float, clock=time.time):
        self.folder, self.lifetime, self.clock = folder, lifetime, clock
        self._key = load_key(folder / KEY_FILE)
        self._revoked_file = folder / REVOKED_FILE
        self._lock = threading.Lock()
        self._revoked: dict[str, float] = self._load_revoked()
        self._tickets: dict[str, tuple[str, float]] = {}

    # --- tokens -------------------------------------------------------------------------------------------------
    def _mac(self, token_id: str, expires: int, fingerprint: str) -> str:
        message = f"{VERSION}.{token_id}.{expires}.{fingerprint}".encode()
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest())

    def issue(self, fingerprint: str, lifetime: float | None = None) -> str:
        expires = int(self.clock() + (self.lifetime if lifetime is None else lifetime))
        token_id = secrets.token_urlsafe(16)
        return f"{VERSION}.{token_id}.{expires}.{self._mac(token_id, expires, fingerprint)}"

    def verify(self, token: str | None, fingerprint: str) -> Claims | None:
        """The token's claims if it is well-formed, signed for ``fingerprint``, unexpired and not revoked."""
        if not token or len(token) > 256:
            return None
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != VERSION or not parts[2].isdigit():
            return None
        token_id, expires, mac = parts[1], int(parts[2]), parts[3]
        if not hmac.compare_digest(mac, self._mac(token_id, expires, fingerprint)):
            return None
        if expires <= self.clock():
            return None
        with self._lock:
            if token_id in self._revoked:
                return None
        return Claims(token_id, float(expires))

    def revoke(self, token: str | None, fingerprint: str) -> bool:
        """Revoke a valid token (kept revoked until it would have expired, across restarts); False if it was not
        valid (forged, expired, already revoked or made under another password: nothing to do)."""
        claims = self.verify(token, fingerprint)
        if claims is None:
            return False
        with self._lock:
            now = self.clock()
            self._revoked = {i: e for i, e in self._revoked.items() if e > now}
            self._revoked[claims.token_id] = claims.expires
            self._save_revoked()
        return True

    def _load_revoked(self) -> dict[str, float]:
        try:
            data = json.loads(self._revoked_file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("cannot read %s (%s): no sign-out before this start is remembered", self._revoked_file, exc)
            return {}
        now = self.clock()
        return {str(i): float(e) for i, e in data.items() if float(e) > now} if isinstance(data, dict) else {}

    def _save_revoked(self) -> None:
        try:
            write_private(self._revoked_file, json.dumps(self._revoked).encode())
        except OSError as exc:  # still revoked in this process; say why it will not survive a restart
            log.warning("cannot keep the revoked sessions in %s: %s", self._revoked_file, exc)

    # --- one-time tickets -----------------------------------------------------------------------------------------
    def ticket(self, token: str) -> str:
        now = self.clock()
        ticket = secrets.token_urlsafe(24)
        with self._lock:
            self._tickets = {t: v for t, v in self._tickets.items() if v[1] > now}
            while len(self._tickets) >= MAX_TICKETS:
                self._tickets.pop(next(iter(self._tickets)))
            self._tickets[ticket] = (token, now + TICKET_SECONDS)
        return ticket

    def redeem(self, ticket: str | None) -> str | None:
        """The token a ticket stands for, once (None: unknown, used or expired)."""
        if not ticket:
            return None
        with self._lock:
            token, until = self._tickets.pop(ticket, (None, 0.0))
        return token if until > self.clock() else None


_SHARED: dict[Path, Sessions] = {}
_SHARED_LOCK = threading.Lock()


def sessions_for(folder: Path, lifetime: float) -> Sessions:
    """The process's one ``Sessions`` for a folder (its lifetime follows the latest setting)."""
    folder = folder.resolve()
    with _SHARED_LOCK:
        shared = _SHARED.get(folder)
        if shared is None:
            shared = _SHARED[folder] = Sessions(folder, lifetime)
        shared.lifetime = lifetime
        return shared


def token_expires(token: str) -> float | None:
    """The expiry written in a token (unverified: for a cookie's Max-Age only)."""
    parts = token.split(".")
    return float(parts[2]) if len(parts) == 4 and parts[2].isdigit() else None
