"""Schemathesis against the published OpenAPI schema, on a populated store (fleet, advisories,
findings, decisions), as an admin: for every operation, generated requests (valid ones, then
invalid ones) never get a 5xx, and every response matches the schema -- its status code is one
the operation declares, its content type and its body are what the schema says.

A few operations are left out because generated requests would undo the test itself (revoking
the admin's own token) or only queue heavy background work (importing the bundled feeds,
assessing, planning); their behaviour is covered by the other API tests.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api_support import copy_store, fast_hashes, populated_sqlite, running  # noqa: F401

#: examples per operation and mode: enough to reach every parameter, small enough to stay fast
EXAMPLES = 6
SKIP = {("DELETE", "/api/v1/tokens/{token_id}"), ("POST", "/api/v1/feeds/import"),
        ("POST", "/api/v1/assessments"), ("POST", "/api/v1/plans")}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo fleet with advisories, findings and decisions, built once."""
    return populated_sqlite(tmp_path_factory)


def _property(strategy: st.SearchStrategy[Any], headers: dict[str, str]) -> Callable[[], None]:
    """A Hypothesis test: each generated request gets a response the checks accept."""

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck),
              phases=[p for p in settings.default.phases if p.name != "shrink"])
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        case = data.draw(strategy)
        case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)

    return check


@pytest.mark.slow
def test_schemathesis_no_5xx_and_conformant_responses(populated: Path, tmp_path: Path) -> None:
    store = copy_store(populated, tmp_path)
    with running(store) as api:
        headers = {"Authorization": f"Bearer {api.tokens['admin']}"}
        schema = schemathesis.openapi.from_url(f"{api.base}/api/v1/openapi.json")
        failures: list[str] = []
        tried = 0
        for result in schema.get_all_operations():
            operation = result.ok()
            if (operation.method.upper(), operation.path) in SKIP:
                continue
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                check = _property(operation.as_strategy(generation_mode=mode), headers)
                tried += 1
                try:
                    check()
                except Unsatisfiable:  # no invalid request exists (no parameter, no body)
                    assert mode is GenerationMode.NEGATIVE
                except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collect all
                    failures.append(f"{operation.method.upper()} {operation.path} "
                                    f"({mode.value}): {str(exc)[:800]}")
    store.close()
    assert tried > 60
    assert failures == [], "\n\n".join(failures)
