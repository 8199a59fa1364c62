"""The HTTP API's settings (pydantic-settings, one declaration per environment variable, as ``indexer.settings``).

``ApiSettings.from_env()`` reads the process environment; ``ApiSettings(field=value)`` reads none (tests).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

ReadAuth = Literal["open", "token"]
MAX_JOBS_KEPT = 100  # finished jobs kept for GET /jobs (oldest dropped first)


def env(default: Any, variable: str, meaning: str, **limits) -> Any:
    return Field(default, validation_alias=variable, description=meaning, **limits)


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True,
                                      env_ignore_empty=True, case_sensitive=True)

    read_auth: ReadAuth = env("open", "MOESEARCH_API_READ_AUTH", "read endpoints (search, documents, stats): open to "
                              "anyone who reaches the server, or token = any valid API token")
    max_upload_mb: float = env(512.0, "MOESEARCH_API_MAX_UPLOAD_MB", "one multipart ingest request's body", gt=0)
    max_upload_files: int = env(1000, "MOESEARCH_API_MAX_UPLOAD_FILES", "files in one multipart ingest request",
                                ge=1)
    max_queued_jobs: int = env(16, "MOESEARCH_API_MAX_QUEUED_JOBS", "write jobs waiting behind the running one; "
                               "more are refused with 429", ge=1)
    public_url: str = env("", "MOESEARCH_API_PUBLIC_URL", "the API's base URL as clients reach it (written to the "
                          "data folder's endpoint file for the CLI; default: http://ADDRESS:PORT/api/v1)")

    def __init__(self, **values: Any):
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ValueError("; ".join(f"{_variable(e['loc'])}: {e['msg']} (got {e.get('input')!r})"
                                       for e in exc.errors())) from None

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        return (init_settings,)  # the environment is read by from_env only

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        source = os.environ if environ is None else environ
        names = {info.validation_alias: name for name, info in cls.model_fields.items()}
        return cls(**{names[k]: v for k, v in source.items() if k in names and v != ""})

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def _variable(loc: tuple) -> str:
    field = ApiSettings.model_fields.get(str(loc[0])) if loc else None
    return field.validation_alias if field is not None else ".".join(map(str, loc))
