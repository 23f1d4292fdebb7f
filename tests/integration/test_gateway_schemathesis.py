"""Schemathesis against /openapi.json: every route, valid and invalid input, and never a 5xx.

A bounded run (EXAMPLES per route and mode, derandomized) against the whole system as OS processes,
as a super admin. Failures are collected across routes and reported together.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from services.common.auth import Caller, Role
from services.supervisor import Ports, System
from tests.support.identity import access_headers

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]
EXAMPLES = 3


@pytest.fixture
def whole_system(tmp_path: Path) -> Iterator[System]:
    system = System(state_dir=tmp_path / "state", ports=Ports.free())
    try:
        system.start()
        yield system
    finally:
        system.stop()


def test_schemathesis_finds_no_server_error_on_any_route(whole_system):
    schema = schemathesis.openapi.from_url(f"{whole_system.gateway_url}/openapi.json")
    headers = access_headers(Caller(staff_id="fuzzer", role=Role.SUPER_ADMIN), ttl_s=3600)
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 100
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            # No shrinking: the services keep state, so a replay is not the same test; the first 5xx is recorded.
            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                      phases=[Phase.explicit, Phase.generate], report_multiple_bugs=False,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def call(case: schemathesis.Case) -> None:
                response = case.call(headers={**(case.headers or {}), **headers}, timeout=15)
                statuses[response.status_code] += 1
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path} ({mode.value}) -> "
                                    f"{response.status_code}: {response.text[:300]}")
                    raise AssertionError(failures[-1])

            before = len(failures)
            try:
                call()
            except Exception:
                if len(failures) == before:
                    raise
    assert failures == []
    # The run reached the services (answers) and their refusals (4xx naming a field), not only the gateway.
    assert statuses[200] > 0 and statuses[400] > 0, statuses
    print(f"schemathesis: {sum(statuses.values())} requests over {len(operations)} routes: {dict(statuses)}")
