"""API conformance: Schemathesis generates requests for every operation in the OpenAPI document
and sends them with a valid API-client token; no response may be a 500 and every response
must match its documented schema.

The number of examples per operation is bounded (:data:`EXAMPLES`) so the run stays well under
two minutes; the test prints the operations and examples checked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok

from attendwise.platform.db import utcnow
from attendwise.platform.oauth_server import CLIENT_SCOPES, TOKEN_PREFIX, ApiClient, ApiClientToken
from attendwise.tenants.models import Organisation
from attendwise.tenants.roles import ROLES

EXAMPLES = 8
RAW_TOKEN = TOKEN_PREFIX + "schemathesis-conformance-token"


@pytest.fixture
def token(db_session: Any, make_school: Callable[..., Organisation]) -> str:
    school = make_school()
    scopes = sorted(p.value for p in ROLES["school_admin"].perms if p.value in CLIENT_SCOPES)
    client = ApiClient(
        org_id=school.id,
        name="Conformance",
        client_id="awc_conformance",
        secret_hash=hashlib.sha256(b"unused").hexdigest(),
        scopes=" ".join(scopes),
    )
    db_session.add(client)
    db_session.flush()
    db_session.add(
        ApiClientToken(
            client_pk=client.id,
            token_hash=hashlib.sha256(RAW_TOKEN.encode()).hexdigest(),
            scopes=client.scopes,
            expires_at=utcnow() + dt.timedelta(minutes=10),
        )
    )
    db_session.flush()
    return RAW_TOKEN


def run_operation(operation: Any, headers: dict[str, str]) -> int:
    """Send up to EXAMPLES generated requests for one operation; return how many were sent."""
    sent = 0

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        nonlocal sent
        sent += 1
        case.call_and_validate(headers=headers, base_url="http://attendwise.test")

    check()
    return sent


def test_every_operation_conforms_to_the_openapi_document(
    app: Flask, db_session: Any, token: str, capsys: pytest.CaptureFixture[str]
) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, base_url="http://attendwise.test")
    headers = {"Authorization": f"Bearer {token}"}
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the OpenAPI document has an invalid operation: {result.err()}"
        operations.append(result.ok())
    assert operations, "the OpenAPI document lists no operations"
    checked = {operation.label: run_operation(operation, headers) for operation in operations}
    with capsys.disabled():
        print(f"\nschemathesis: {len(checked)} operations, {sum(checked.values())} examples")
        for label, count in sorted(checked.items()):
            print(f"  {count:3d}  {label}")
