"""Fixtures shared by every test: a real Git origin, an isolated data directory, users per role."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission

from tests.gitutil import WorkRepo, write_standard_layout

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(autouse=True)
def _isolated_data_dir(settings, tmp_path):
    """Every test gets its own data directory (and so its own portal clone)."""
    data = tmp_path / "data"
    data.mkdir()
    settings.CMDB_DATA_DIR = data
    settings.CMDB_CLONE_DIR = data / "repo"
    settings.CMDB_REPO_URL = ""
    settings.CMDB_WEBHOOK_SECRET = "test-webhook-secret"
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    # Role fixtures create users in most tests: a deliberately slow hasher would dominate the suite.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from portal.celery import app

    app.conf.task_always_eager = True
    from django.core.cache import cache

    cache.clear()  # throttle counters: every test starts with a full allowance
    yield


@pytest.fixture
def work_repo(tmp_path, settings) -> WorkRepo:
    """An empty working copy whose bare origin the portal is configured to use."""
    repo = WorkRepo(tmp_path / "git")
    settings.CMDB_REPO_URL = str(repo.origin)
    return repo


@pytest.fixture(scope="session")
def _standard_repo_template(tmp_path_factory) -> Path:
    """The standard layout built once per session; tests get a copy (git init+commit+push is slow)."""
    root = tmp_path_factory.mktemp("standard-repo")
    repo = WorkRepo(root)
    write_standard_layout(repo)
    repo.commit("Initial layout")
    return root


@pytest.fixture
def config_repo(_standard_repo_template, tmp_path, settings) -> WorkRepo:
    """The standard small layout, committed and pushed (not yet synced)."""
    root = tmp_path / "git"
    shutil.copytree(_standard_repo_template, root, symlinks=True)
    repo = WorkRepo.existing(root)
    repo.git("remote", "set-url", "origin", str(repo.origin))
    settings.CMDB_REPO_URL = str(repo.origin)
    return repo


@pytest.fixture
def synced(config_repo, db):
    """The standard layout, synced and indexed."""
    from cmdb import services

    services.repo_sync(trigger="test")
    return config_repo


def _user(django_user_model, username, *, groups=(), staff=False, perms=()):
    user = django_user_model.objects.create_user(username=username, password=PASSWORD, is_staff=staff)
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])  # flushed by transactional tests
    for codename in perms:
        app_label, code = codename.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=code))
    return user


@pytest.fixture
def viewer(db, django_user_model):
    return _user(django_user_model, "vera_viewer", groups=["viewers"])


@pytest.fixture
def requester(db, django_user_model):
    return _user(django_user_model, "rick_requester", groups=["requesters"])


@pytest.fixture
def approver(db, django_user_model):
    return _user(django_user_model, "alice_approver", groups=["approvers"])


@pytest.fixture
def staff(db, django_user_model):
    return _user(django_user_model, "sam_staff", staff=True, perms=["cmdb.view_secret"])


@pytest.fixture
def secret_viewer(db, django_user_model):
    return _user(django_user_model, "sid_secrets", groups=["viewers"], perms=["cmdb.view_secret"])


@pytest.fixture
def all_roles(viewer, requester, approver, staff):
    return {"viewer": viewer, "requester": requester, "approver": approver, "staff": staff}


@pytest.fixture
def client_for(client):
    """``client_for(user)``: a test client logged in as ``user`` (CSRF checks on)."""
    from django.test import Client

    def make(user):
        c = Client(enforce_csrf_checks=True)
        c.force_login(user)
        return c

    return make


@pytest.fixture
def browser():
    """A headless system Chromium for the real-browser tests (see tests/changes/browser.py)."""
    from tests.changes.browser import launch_chromium

    with launch_chromium() as chromium:
        yield chromium
