"""The demo repository of ``make demo`` for the release tests (browser and service level)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import Group

from tests.conftest import PASSWORD

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def demo(tmp_path, settings, db) -> Path:
    """The demo repository built by ``demo/build_demo_repo.py`` as ``make demo`` builds it, on origin
    and synced; deploys write to its local machine trees (CMDB_LOCAL_ROOT_BASE and
    CMDB_DEPLOY_ENVIRONMENTS as in scripts/demo.sh). Returns the demo's folder."""
    from cmdb import services

    out = tmp_path / "demo-source"
    subprocess.run([sys.executable, str(ROOT / "demo" / "build_demo_repo.py"), str(out)], check=True,
                   capture_output=True, text=True)
    settings.CMDB_REPO_URL = str(out / "origin.git")
    settings.CMDB_LOCAL_ROOT_BASE = out
    settings.CMDB_DEPLOY_ENVIRONMENTS = ["production", "test"]
    settings.CMDB_DEPLOY_BACKUP_DIR = tmp_path / "deploy-backups"
    services.repo_sync(trigger="test")
    return out


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
