"""Fixtures of the release tests (the demo repository of ``make demo`` is in tests/conftest.py)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from tests.conftest import PASSWORD


@pytest.fixture
def second_approver(db, django_user_model):
    """Production needs two approvals: a second approver who can sign in."""
    user = django_user_model.objects.create_user(username="bob_approver", password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name="approvers")[0])
    return user


@pytest.fixture
def released(dry_env, make_change, requester, approver, settings, tmp_path, django_capture_on_commit_callbacks):
    """The dry-run repository's change request, approved and released to main; deploys allowed on
    its environment, backups in the test's directory."""
    from changes import services as change_services

    settings.CMDB_DEPLOY_ENVIRONMENTS = ["prod"]
    settings.CMDB_DEPLOY_BACKUP_DIR = tmp_path / "backups"
    cr = make_change(dry_env["branch"])
    with django_capture_on_commit_callbacks(execute=True):
        change_services.change_submit(change=cr, acting_user=requester)
        change_services.change_approve(change=cr, acting_user=approver)
        cr = change_services.change_implement(change=cr, acting_user=approver)
    return cr
