"""The API's contract, tested from its own OpenAPI schema (schemathesis): every operation, with valid and with
invalid input, never answers 5xx, answers only the status codes and bodies its schema documents, rejects invalid
input with a 4xx, and every error body names a stable code and a message.

(schemathesis' ``pytest.from_fixture`` does not run under pytest 9, so each operation's strategies are driven by
hypothesis here: ``APIOperation.as_strategy`` per generation mode.)"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from api import ApiSettings, Runtime, create_app
from api.errors import CODES
from indexer import IndexerSettings, Source

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection]
EXAMPLES = 15  # per operation and generation mode


def _never(*_):
    raise AssertionError("only the schema is read")


_OFFLINE = schemathesis.openapi.from_asgi("/openapi.json", create_app(Runtime(IndexerSettings(), ApiSettings(),
                                                                                _never)))
OPERATIONS = sorted(f"{op.ok().method.upper()} {op.ok().path}" for op in _OFFLINE.get_all_operations())


def test_the_schema_covers_every_area():
    paths = {label.split()[1] for label in OPERATIONS}
    assert {"/search", "/documents", "/documents/{doc_id}/file", "/documents/{doc_id}/similar", "/stats", "/model",
            "/health", "/ready", "/ingest", "/ingest/paths", "/documents/delete", "/reindex", "/jobs/{job_id}",
            "/jobs/{job_id}/cancel", "/sync/folders"} <= paths


@pytest.fixture
def live_schema(pipeline, settings, make_client):
    pipeline.ingest([Source.upload("cells.txt", b"Ribosomes translate messenger RNA into proteins. " * 20),
                     Source.upload("stars.md", b"# Stars\n\nStars fuse hydrogen into helium in their cores. " * 20)])
    runtime, _ = make_client(pipeline, settings)
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(runtime))
    schema.config.generation.update(with_security_parameters=False)  # the admin token is sent with every case
    yield schema
    runtime.close()


def error_body_check(response) -> None:
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"}, body
        assert body["error"]["code"] in CODES, body
        assert CODES[body["error"]["code"]] == response.status_code, body
        assert body["error"]["message"].strip(), body


@pytest.mark.parametrize("operation", OPERATIONS)
def test_operation_keeps_its_contract(operation, live_schema, auth):
    method, path = operation.split()
    op = live_schema[path][method]
    raw = op.definition.raw
    takes_input = bool(raw.get("parameters") or raw.get("requestBody"))
    multipart = "multipart/form-data" in raw.get("requestBody", {}).get("content", {})
    # a multipart file part is bytes whatever they look like: schemathesis' "invalid" file contents are valid files
    checks = [c for c in CHECKS if not (multipart and c is negative_data_rejection)]
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if takes_input else (GenerationMode.POSITIVE,):
        @given(case=op.as_strategy(mode))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            response = case.call(headers=dict(auth))
            case.validate_response(response, checks=checks)
            error_body_check(response)

        check()
