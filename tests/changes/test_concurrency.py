"""Concurrent actions on one change request, with real threads and real database transactions.

Runs on PostgreSQL (the second run of ``make test``): SQLite's shared-cache in-memory test database
answers "table is locked" instead of waiting, which says nothing about production behaviour.
"""

from __future__ import annotations

import pytest
from django.db import connection

from changes import services
from changes.models import Approval, ChangeEvent, ChangeRequest
from tests.fixtures.worker import run_together

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor == "sqlite", reason="needs a server database (runs in the PostgreSQL pass)"),
]


def test_two_approvers_voting_at_once_are_each_counted_once(tls_branch, make_change, requester, approver, approver2):
    change = services.change_submit(change=make_change(tls_branch), acting_user=requester)

    _, errors = run_together(
        lambda: services.change_approve(change=change, acting_user=approver),
        lambda: services.change_approve(change=change, acting_user=approver2),
    )

    assert errors == []
    change.refresh_from_db()
    assert Approval.objects.filter(change=change).count() == 2
    assert change.state == ChangeRequest.State.APPROVED
    assert ChangeEvent.objects.filter(change=change, action="approved").count() == 1


def test_one_approver_double_clicking_is_counted_once(tls_branch, make_change, requester, approver):
    change = services.change_submit(change=make_change(tls_branch), acting_user=requester)

    _, errors = run_together(*[lambda: services.change_approve(change=change, acting_user=approver)] * 3)

    assert len(errors) == 2 and all(isinstance(e, services.ChangeConflict) for e in errors)
    assert Approval.objects.filter(change=change).count() == 1


def test_two_implement_requests_at_once_produce_one_merge(test_branch, make_change, requester, approver, staff):
    change = services.change_approve(change=services.change_submit(change=make_change(test_branch),
                                                                   acting_user=requester), acting_user=approver)

    results, errors = run_together(
        lambda: services.change_implement(change=change, acting_user=staff),
        lambda: services.change_implement(change=change, acting_user=staff),
    )

    assert len(results) == 1 and len(errors) == 1
    assert isinstance(errors[0], services.IllegalTransition)
    assert ChangeEvent.objects.filter(change=change, action="merged").count() == 1


def test_a_pipeline_posting_twice_at_once_opens_one_change_request(test_branch, requester):
    def post():
        return services.change_get_or_create(acting_user=requester, branch=test_branch, title="From CI")

    results, errors = run_together(post, post)

    assert errors == []
    assert ChangeRequest.objects.filter(branch=test_branch).count() == 1
    cr = ChangeRequest.objects.get(branch=test_branch)
    assert sorted(created for _, created in results) == [False, True]
    assert {change.pk for change, _ in results} == {cr.pk}
    assert ChangeEvent.objects.filter(change=cr, action="created").count() == 1
