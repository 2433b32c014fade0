"""A schemathesis pass over the whole OpenAPI schema, in process, as a viewer and as staff: inputs the
schema allows never make the API answer 5xx and every answer matches the schema; inputs it does not
allow never answer 5xx either. Bounded: few examples per operation, derandomized for CI.

(schemathesis' pytest plugin does not run under this pytest; its operations and Hypothesis strategies
are driven directly instead.)"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

pytestmark = pytest.mark.django_db

BOUNDS = settings(max_examples=5, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))


@pytest.fixture
def api_schema(synced, viewer, staff):
    from django.core.signals import request_finished, request_started
    from django.core.wsgi import get_wsgi_application
    from django.db import close_old_connections

    from accounts.services import token_create

    application = get_wsgi_application()  # portal.wsgi's, without its gc.freeze() in this test process

    # As Django's test client does: the WSGI handler must not close the test's connection (on
    # PostgreSQL it holds the test's transaction) at the start and end of every request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)

    tokens = {role: token_create(acting_user=user, owner=user, name="fuzz").key for role, user in (("viewer", viewer), ("staff", staff))}
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application,
                                           headers={"Authorization": f"Token {tokens['staff']}"})
    yield schema, tokens
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _run(schema, tokens, mode, checks) -> tuple[list[str], int]:
    """(failures, operations exercised). Only what the portal answered counts as a failure: an
    operation the generator cannot make a case for (no parameter to break, or a generator error in
    negative mode) is not exercised, and the tests require most operations to be."""
    failures: list[str] = []
    exercised = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        answered: list[BaseException] = []

        @given(case=operation.as_strategy(generation_mode=mode))
        @BOUNDS
        def run(case):
            for role in ("viewer", "staff"):
                headers = {"Authorization": f"Token {tokens[role]}"}
                # A body the test client cannot even encode (a list as form data, in negative mode)
                # raises here, before the portal sees a request: the generator's failure, not the portal's.
                response = case.call(headers=headers)
                try:
                    case.validate_response(response, checks=checks, headers=headers)
                except BaseException as exc:
                    answered.append(exc)
                    raise

        try:
            run()
            exercised += 1
        except Exception as exc:
            if answered:  # the portal's answer failed a check: one line per operation
                failures.append(f"{operation.label}: {str(exc).strip().splitlines()[0][:300]}")
    return failures, exercised


def test_valid_input_never_answers_5xx_and_every_answer_matches_the_schema(api_schema):
    schema, tokens = api_schema
    failures, exercised = _run(schema, tokens, GenerationMode.POSITIVE, [not_a_server_error, response_schema_conformance])
    assert failures == [], "\n".join(failures)
    assert exercised == len(list(schema.get_all_operations()))


def test_invalid_input_never_answers_5xx(api_schema):
    schema, tokens = api_schema
    failures, exercised = _run(schema, tokens, GenerationMode.NEGATIVE, [not_a_server_error])
    assert failures == [], "\n".join(failures)
    assert exercised >= 30
