"""The app's own settings (what the indexer does not read): every knob is an environment variable, declared once
below and read here and nowhere else (pydantic-settings, as ``indexer/settings.py``).

The data folder is the indexer's ``MOESEARCH_DATA_DIR``; the app keeps its files in ``app_folder()``
(``DATA_DIR/app/``): the admin password hash made on first start, the session-signing key and the revoked sessions,
all mode 0600.  ``AppSettings.from_env()`` reads the process environment (``from_env(mapping)`` a given mapping);
an empty variable means "not set"; a bad value raises ``ValueError`` naming the variable.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from indexer import IndexerSettings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def env(default: Any, variable: str, meaning: str, **limits) -> Any:
    return Field(default, validation_alias=variable, description=meaning, **limits)


class AppSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True)

    admin_password_hash: str | None = env(None, "MOESEARCH_ADMIN_PASSWORD_HASH", "the admin password's scrypt hash "
                                          "(`python -m app.auth`); wins over .streamlit/secrets.toml and the hash "
                                          "made on first start (DATA_DIR/app/admin_password.hash)")
    trusted_proxies: str = env("", "MOESEARCH_TRUSTED_PROXIES", "reverse proxies (IPs or CIDRs, comma-separated) "
                               "whose X-Forwarded-For is believed; empty: every client is its socket address")
    session_hours: float = env(12.0, "MOESEARCH_SESSION_HOURS", "how long an admin sign-in lasts (the session "
                               "cookie's lifetime)", gt=0, le=24 * 30)

    def __init__(self, **values: Any):
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ValueError("; ".join(f"{_variable(e['loc'])}: {e['msg']}" for e in exc.errors())) from None

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # the environment comes in through from_env only

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AppSettings:
        source = os.environ if environ is None else environ
        values = {f.validation_alias: source[f.validation_alias] for f in cls.model_fields.values()
                  if source.get(f.validation_alias, "").strip()}
        return cls(**values)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        """Checked and written out canonically (a bad entry raises, naming it)."""
        return ",".join(str(n.network_address) if n.prefixlen == n.max_prefixlen else str(n)
                        for n in parse_networks(value))

    @property
    def networks(self) -> tuple[Network, ...]:
        return parse_networks(self.trusted_proxies)

    @property
    def session_seconds(self) -> float:
        return self.session_hours * 3600.0


def parse_networks(text: str) -> tuple[Network, ...]:
    """``"10.0.0.1, 192.168.0.0/16"`` -> networks (a bare address is a /32 or /128)."""
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network (CIDR), e.g. 127.0.0.1 or 10.0.0.0/8") \
                from None
    return tuple(networks)


def _variable(loc: tuple) -> str:
    field = AppSettings.model_fields.get(str(loc[0])) if loc else None
    return str(field.validation_alias) if field is not None else ".".join(map(str, loc))


def app_folder(environ: Mapping[str, str] | None = None) -> Path:
    """Where the app keeps its own files: ``DATA_DIR/app`` (``MOESEARCH_DATA_DIR``, read by the indexer)."""
    return IndexerSettings.from_env(environ).data_dir / "app"
