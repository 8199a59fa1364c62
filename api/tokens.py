"""Admin tokens for the HTTP API: made by ``python -m api token create NAME``, shown once, kept only as hashes.

A token is ``msk_`` + 32 random bytes (URL-safe base64).  With 256 random bits there is nothing to guess, so a
plain SHA-256 is enough to keep it unusable if the file leaks (a slow password hash protects low-entropy secrets;
this is the scheme of GitHub's and PyPI's API tokens); comparisons are constant-time.  The file is
``DATA_DIR/api/tokens.json`` (mode 0600, replaced atomically) and is read again when it changes, so a token
created or revoked by the CLI counts at once in a running server.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

PREFIX = "msk_"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_TOKENS = 1000  # tokens in one data folder


@dataclass(frozen=True)
class TokenInfo:
    name: str
    created_at: str
    sha256: str

    def public(self) -> dict:
        return {"name": self.name, "created_at": self.created_at, "fingerprint": self.sha256[:12]}


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_file(data_dir: Path) -> Path:
    return Path(data_dir) / "api" / "tokens.json"


class TokenStore:
    def __init__(self, data_dir: Path):
        self.path = token_file(data_dir)
        self._lock = threading.Lock()
        self._seen: tuple[float, int] | None = None
        self._tokens: tuple[TokenInfo, ...] = ()

    def _load(self) -> tuple[TokenInfo, ...]:
        with self._lock:
            try:
                st = self.path.stat()
            except FileNotFoundError:
                self._seen, self._tokens = None, ()
                return ()
            key = (st.st_mtime, st.st_size)
            if key != self._seen:
                try:
                    rows = json.loads(self.path.read_text())
                    self._tokens = tuple(TokenInfo(r["name"], r["created_at"], r["sha256"]) for r in rows)
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    raise ValueError(f"{self.path} is not a token file ({exc}); remove it and create tokens "
                                     "again") from None
                self._seen = key
            return self._tokens

    def _save(self, tokens: list[TokenInfo]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump([asdict(t) for t in tokens], out, indent=1)
        os.replace(tmp, self.path)
        self._seen = None

    def list(self) -> list[TokenInfo]:
        return list(self._load())

    def create(self, name: str) -> str:
        """A new token named ``name`` (shown to the caller once; only its hash is kept)."""
        if not NAME.fullmatch(name or ""):
            raise ValueError(f"a token name is 1-64 letters, digits, '.', '_' or '-', got {name!r}")
        tokens = self.list()
        if any(t.name == name for t in tokens):
            raise ValueError(f"a token named {name!r} exists; revoke it first or choose another name")
        if len(tokens) >= MAX_TOKENS:
            raise ValueError(f"{MAX_TOKENS} tokens exist (MAX_TOKENS); revoke some first")
        token = PREFIX + secrets.token_urlsafe(32)
        tokens.append(TokenInfo(name, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), digest(token)))
        self._save(tokens)
        return token

    def revoke(self, name: str) -> bool:
        tokens = self.list()
        kept = [t for t in tokens if t.name != name]
        if len(kept) == len(tokens):
            return False
        self._save(kept)
        return True

    def verify(self, token: str | None) -> TokenInfo | None:
        """The token's record if ``token`` is a current token, else None."""
        if not token or not token.startswith(PREFIX):
            return None
        wanted = digest(token)
        found = None
        for t in self._load():
            if hmac.compare_digest(t.sha256, wanted):
                found = t
        return found
