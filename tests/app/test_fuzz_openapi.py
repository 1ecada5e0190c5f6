"""Schemathesis against the app's own OpenAPI document, over real HTTP (uvicorn): every operation, with
valid and invalid input generated from the schema, answered without a server error and as documented.

Seeded (derandomized) and bounded: about two minutes on a 2-core machine. The caller holds every right
(admin, auditor, investigator, approver) so requests get past the gate to the handlers. WHEP's POST is
included: the document declares no body for it, so its refusals (415, 400, 403, 404) are what is tested;
real offers are fuzzed in test_fuzz_sdp.py."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.app.inproc import served_app
from tests.policies.conftest import add_user

EXAMPLES = 20  # per operation and mode (valid, invalid)
CALLER_ROLES = ["policy_admin", "auditor", "police_investigator", "raw_approver"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with served_app(tmp_path_factory.mktemp("fuzz-openapi")) as (base_url, local):
        caller = add_user(local.ctx, "fuzz.caller", CALLER_ROLES)
        token = local.ctx.auth.issue_token(caller.user_id)
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        started = time.monotonic()
        yield {"base_url": base_url, "session": session, "local": local}
        print(f"\nschemathesis: {time.monotonic() - started:.0f} s")


def _fuzz(operation: Any, mode: GenerationMode, served: dict[str, Any], found: list[str],
          statuses: Counter[int]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        try:
            response = case.call(base_url=served["base_url"], session=served["session"])
            statuses[response.status_code] += 1
            case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
        except (FailureGroup, Exception) as exc:  # noted, not shrunk: the run stays bounded and goes on
            found.append(f"{operation.label} ({mode.value}): {' '.join(str(exc).split())[:400]}")

    try:
        run()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE  # nothing of it can be made invalid (no parameters, no body)


def test_api_answers_as_documented_and_never_fails(served: dict[str, Any]) -> None:
    spec = served["session"].get(served["base_url"] + "/openapi.json").json()
    schema = schemathesis.openapi.from_dict(spec)
    found: list[str] = []
    statuses: Counter[int] = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(operation, mode, served, found, statuses)
    print(f"\nschemathesis: {len(operations)} operations, answers {dict(sorted(statuses.items()))}")
    assert statuses[200] + statuses[201] > 100 and statuses[422] > 100  # it got past the gate, both ways
    assert not found, f"{len(found)} failures:\n" + "\n".join(found[:40])
