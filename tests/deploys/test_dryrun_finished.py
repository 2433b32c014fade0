"""A finished change request (rejected, withdrawn, verified, closed) offers no dry run, and the service refuses one."""

from __future__ import annotations

import pytest

from changes.models import ChangeRequest
from deploys.models import Job

FINISHED = ["rejected", "withdrawn", "verified", "closed"]


@pytest.fixture
def cr(dry_env, make_change):
    return make_change(dry_env["branch"])


def test_an_open_change_request_offers_a_dry_run(cr, requester, client_for):
    assert 'data-action="dry-run"' in client_for(requester).get(cr.get_absolute_url()).content.decode()


@pytest.mark.parametrize("state", FINISHED)
def test_a_finished_change_request_offers_no_dry_run_and_refuses_one(cr, requester, client, api_for, state):
    ChangeRequest.objects.filter(pk=cr.pk).update(state=state)
    client.force_login(requester)  # the test client skips CSRF checks: the refusal is the state's
    assert 'data-action="dry-run"' not in client.get(cr.get_absolute_url()).content.decode()

    page = client.post(f"/jobs/change/{cr.pk}/dry-run/")
    assert page.status_code == 409
    assert f"{cr.reference} is {state}" in page.content.decode()
    api = api_for(requester).post(f"/api/changes/{cr.pk}/dry-run/")
    assert api.status_code == 409
    assert api.json()["detail"].startswith(f"{cr.reference} is {state}: it will not be deployed")
    assert not Job.objects.exists()
