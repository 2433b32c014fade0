"""Fixtures shared by every test: a real Git origin, an isolated data directory, users per role."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import asyncssh
import pytest
from django.contrib.auth.models import Group, Permission

from tests.fixtures.dryrun_repo import build_machines, build_repo
from tests.fixtures.windows import around_now
from tests.fixtures.worker import backends, drop_worker_connections, need
from tests.gitutil import WorkRepo, on_branch, write_standard_layout
from tests.services import free_port, start_redis

PASSWORD = "correct-horse-battery-staple"
ROOT = Path(__file__).resolve().parents[1]


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


@pytest.fixture
def make_change(requester):
    from changes import services

    def make(branch, **kwargs):
        kwargs.setdefault("title", f"Change on {branch}")
        # Releasing needs a window holding now: unless a test says otherwise, the CR has one.
        if "planned_start" not in kwargs and "planned_end" not in kwargs:
            kwargs.update(around_now())
        return services.change_create(acting_user=kwargs.pop("user", requester), branch=branch, **kwargs)

    return make


@pytest.fixture
def dry_env(work_repo, tmp_path, settings, db):
    """The demo-like repository on origin, a branch, the machines' live trees, an SSH identity."""
    machines = tmp_path / "live"
    machines.mkdir()
    web1 = build_machines(machines)
    settings.CMDB_LOCAL_ROOT_BASE = machines
    key = asyncssh.generate_private_key("ssh-ed25519")
    (tmp_path / "id").write_bytes(key.export_private_key())
    (tmp_path / "known_hosts").write_text("")
    settings.CMDB_SSH_KEY = str(tmp_path / "id")
    settings.CMDB_SSH_KNOWN_HOSTS = str(tmp_path / "known_hosts")
    settings.CMDB_SSH_CONNECT_TIMEOUT = 3
    branch = build_repo(work_repo, ssh_port=free_port())
    return {"repo": work_repo, "branch": branch, "web1": web1, "machines": machines}


# --- a real broker and worker ---------------------------------------------------------------------
@pytest.fixture
def redis_url(tmp_path):
    need("redis-server")
    url, handle = start_redis(tmp_path / "redis")
    yield url
    handle.stop()


@pytest.fixture
def celery_worker_on(redis_url):
    """The portal's Celery app pointed at the real broker, not eager, with a worker thread."""
    from celery.contrib.testing.worker import start_worker

    from portal.celery import app

    saved = {k: app.conf[k] for k in ("broker_url", "broker_transport_options", "task_always_eager")}
    app.conf.update(broker_url=redis_url, broker_transport_options={}, task_always_eager=False)
    app._pool = None
    app.amqp._producer_pool = None
    before = backends()
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
            yield app
    finally:
        app.conf.update(saved)
        app._pool = None
        app.amqp._producer_pool = None
        drop_worker_connections(before)


@pytest.fixture
def direct_push(db):
    """Push a commit to main without a change request and sync: the unauthorized commit it makes."""
    from changes.models import UnauthorizedCommit
    from cmdb import services as cmdb_services

    def push(synced, summary: str = "Hotfix pushed directly") -> UnauthorizedCommit:
        synced.write("production/web1/README.md", f"# web1\n\n{summary}\n")
        sha = synced.commit(summary)
        cmdb_services.repo_sync(trigger="test")
        return UnauthorizedCommit.objects.get(sha=sha)

    return push


@pytest.fixture
def tls_branch(synced):
    """A branch changing a production application and production/_common."""
    on_branch(synced, "change/tls", {
        "production/web1/nginx/files/etc/nginx/nginx.conf": "worker_processes 4;\nssl_protocols TLSv1.3;\n",
        "production/_common/tls/README.md": "# TLS\n\nRotate yearly.\n",
    }, message="Harden TLS")
    return "change/tls"


@pytest.fixture
def test_branch(synced):
    """A branch touching only the test environment (needs one approval)."""
    on_branch(synced, "change/test-only", {"test/web-test1/nginx/files/etc/nginx/nginx.conf": "worker_processes 2;\n"})
    return "change/test-only"


@pytest.fixture
def api_for(db):
    """``api_for(user)``: a DRF client authenticated as ``user`` (as a token would; no CSRF)."""
    from rest_framework.test import APIClient

    def make(user):
        client = APIClient()
        client.force_authenticate(user)
        return client

    return make


# --- single sign-on: a real directory and a real OpenID provider ----------------------------------
DIRECTORY_PEOPLE = {"olivia": "Olivia Ops", "arthur": "Arthur Approver", "dana": "Dana Admin"}
DIRECTORY_GROUPS = {"ops": ["olivia", "arthur"], "change-board": ["arthur"], "it-admins": ["dana"],
                    "unrelated": ["olivia"]}


@pytest.fixture
def directory(tmp_path):
    """slapd on loopback with DIRECTORY_PEOPLE (password tests.fixtures.ldap_server.USER_PASSWORD) in
    DIRECTORY_GROUPS; stopped at the end."""
    need("slapd", "slapadd", "ldapmodify")
    from tests.fixtures.ldap_server import start_slapd

    server = start_slapd(tmp_path / "slapd", DIRECTORY_PEOPLE, DIRECTORY_GROUPS)
    yield server
    server.stop()


OIDC_ACCOUNTS = {"olivia": {"name": "Olivia Ops", "groups": ["ops", "unrelated"]},
                 "arthur": {"name": "Arthur Approver", "groups": ["ops", "change-board"]}}


@pytest.fixture
def oidc_provider(live_server, tmp_path):
    """The npm ``oidc-provider`` under Node on a loopback port, its client redirecting to the live
    server's callback; ``.set_groups(login, groups)`` changes a person's groups claim."""
    need("node")
    from tests.fixtures.oidc_server import start_oidc_provider

    provider = start_oidc_provider(tmp_path / "oidc", f"{live_server.url}/oidc/callback/", OIDC_ACCOUNTS)
    yield provider
    provider.stop()


@pytest.fixture
def http_receiver():
    """A real HTTP server on loopback that records what it receives (tests/fixtures/receiver.py)."""
    from tests.fixtures.receiver import start_receiver

    receiver, server = start_receiver()
    yield receiver
    server.shutdown()
    server.server_close()
