"""Fuzz every operation of the OpenAPI schema with schemathesis: whatever the input, valid or
not, the service answers with a 2xx/4xx (never a 5xx), and a documented response conforms to
its schema.

Each operation is fuzzed, with valid and with invalid input, as an anonymous caller (the
generated `X-API-Key`, if any, must be refused with a 4xx), and every operation that takes
`X-API-Key` again with the admin key (which every scope accepts), so the admin operations'
bodies are exercised past the auth check too.

The schema is loaded from the app in process (`schemathesis.openapi.from_asgi`) and every
operation is driven through its Hypothesis strategy, one subtest per operation.
(`schemathesis.pytest.from_fixture(...).parametrize()` would be the shorter spelling, but
it reads `Function._nodeid`, which pytest 9.2 no longer has.)
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import CheckContext, CheckFunction, GenerationMode, Response
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.core.result import Err
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.schemas import OpenApiSchema

from tuijian.config import Settings
from tuijian.serving.api import create_app
from tuijian.serving.service import Service

from ..conftest import NOW


def error_envelope(ctx: CheckContext, response: Response, case: schemathesis.Case) -> None:
    """Every 4xx, the framework's own refusals included (no such route, an unreadable body),
    names the offending field: {"error", "detail": [{"field", "message"}]}."""
    if not 400 <= response.status_code < 500:
        return
    body = response.json()
    assert isinstance(body.get("error"), str), body
    assert body["detail"] and all(isinstance(d.get("field"), str) and d["field"]
                                  and isinstance(d.get("message"), str)
                                  for d in body["detail"]), body


CHECKS: list[CheckFunction] = [not_a_server_error, response_schema_conformance,
                               error_envelope]
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck),
                database=None)


@pytest.fixture(scope="module")
def fuzz_service(generated: Path, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[Service]:
    """One service for the whole module (opening it is the slow part); the fuzzer's writes
    (items, users, events, experiments) only make later cases meet a richer state."""
    data = tmp_path_factory.mktemp("fuzz") / "data"
    shutil.copytree(generated, data / "generated")
    svc = Service(Settings(data_dir=data), now=NOW)
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def api_schema(fuzz_service: Service) -> Iterator[OpenApiSchema]:
    app = create_app(fuzz_service, rebuild=False)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    _homogeneous_tuples_as_items(schema.raw_schema)
    yield schema
    # schemathesis keeps the app's lifespan running until the process exits: end it while
    # the service is still open
    shutdown_lifespans()


def _homogeneous_tuples_as_items(node: Any) -> None:
    """Spell a tuple of one type (the experiments' bucket ranges, `tuple[int, int]`) as
    `items` + `minItems`/`maxItems` (which pydantic adds already) instead of `prefixItems`:
    the same constraint, but schemathesis 4.32 rewrites a 3.1 response schema's `prefixItems`
    into draft-4 `items: [...]` and then rejects it as an invalid schema."""
    if isinstance(node, dict):
        prefix = node.get("prefixItems")
        if prefix and "items" not in node and all(p == prefix[0] for p in prefix):
            del node["prefixItems"]
            node["items"] = prefix[0]
        for value in node.values():
            _homogeneous_tuples_as_items(value)
    elif isinstance(node, list):
        for value in node:
            _homogeneous_tuples_as_items(value)


def _operations(schema: OpenApiSchema, admin_only: bool) -> list[schemathesis.APIOperation]:
    ops = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # an operation schemathesis cannot read: say which
        ops.append(result.ok())
    # /metrics: Prometheus text exposition, no input to fuzz and no JSON schema to conform to
    ops = [op for op in ops if op.path != "/metrics"]
    if admin_only:
        ops = [op for op in ops if any(p.name.lower() == "x-api-key" for p in op.headers)]
    assert ops
    return ops


def _cases(op: schemathesis.APIOperation, mode: GenerationMode,
           headers: dict[str, str] | None) -> st.SearchStrategy[schemathesis.Case]:
    cases = op.as_strategy(mode, headers=headers)
    if op.path == "/v1/push":
        # "all" pushes to every known user (3,000 here): a minute for 25 examples. A short
        # list of ids runs the same per-user code, so "all" is swapped for one.
        return cases.map(_no_push_to_all)
    return cases


def _no_push_to_all(case: schemathesis.Case) -> schemathesis.Case:
    if isinstance(case.body, dict) and case.body.get("users") == "all":
        case.body = {**case.body, "users": ["u1", "u2", "u3"]}
    return case


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("as_admin", [False, True], ids=["anonymous", "admin"])
def test_no_operation_answers_a_server_error(
        api_schema: OpenApiSchema, fuzz_service: Service, subtests: pytest.Subtests,
        mode: GenerationMode, as_admin: bool) -> None:
    headers = {"X-API-Key": fuzz_service.settings.admin_key} if as_admin else None
    for op in _operations(api_schema, admin_only=as_admin):

        @FUZZ
        @given(case=_cases(op, mode, headers))
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=CHECKS)

        with subtests.test(op.label):
            try:
                fuzz()
            except Unsatisfiable:
                # nothing can be invalid about an operation with no parameters and no body,
                # or with only free-form strings; anything with a body must be fuzzable
                assert mode is GenerationMode.NEGATIVE and not op.body.items, op.label


def test_a_push_time_past_the_calendar_is_a_422_naming_now(
        api_schema: OpenApiSchema, fuzz_service: Service) -> None:
    """Found by the fuzzer: a send time past year 9999 overflowed time.gmtime (a 500)."""
    client = TestClient(api_schema.app)  # the fuzzed app, whose lifespan already runs
    key = {"X-API-Key": fuzz_service.settings.admin_key}
    for now in (1.5e19, 1.9e17, 5e9):
        r = client.post("/v1/push", headers=key, json={"users": ["u1"], "now": now})
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["field"] == "now"
