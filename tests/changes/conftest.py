import shutil
import subprocess
from pathlib import Path

import pytest

from cmdb.gitrepo import ConfigRepo
from tests.changes.apiutil import TEST_BRANCH, TEST_NGINX, TLS_BRANCH
from tests.gitutil import WorkRepo, on_branch


@pytest.fixture
def approver2(db, django_user_model):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user("bob_approver", email="bob@example.org", password="x")
    user.groups.add(Group.objects.get_or_create(name="approvers")[0])
    return user


# --- the API tests: a repository with change branches, without the (slow, unneeded) sync ---------------


@pytest.fixture(scope="session")
def _branch_repo_template(_standard_repo_template, tmp_path_factory) -> Path:
    """The standard layout with ``TEST_BRANCH`` and ``TLS_BRANCH`` pushed and the portal's clone
    fetched, built once (the API never reads the CMDB index, so no sync)."""
    root = tmp_path_factory.mktemp("changes-api-repo")
    shutil.copytree(_standard_repo_template, root, symlinks=True, dirs_exist_ok=True)
    repo = WorkRepo.existing(root)
    repo.git("remote", "set-url", "origin", str(repo.origin))
    on_branch(repo, TEST_BRANCH, {TEST_NGINX: "worker_processes 2;\n"}, message="Two workers in test")
    on_branch(repo, TLS_BRANCH, {
        "production/web1/nginx/files/etc/nginx/nginx.conf": "worker_processes 4;\nssl_protocols TLSv1.3;\n",
        "production/_common/tls/README.md": "# TLS\n\nRotate yearly.\n",
    }, message="Harden TLS")
    # The portal's clone, fetched once here (tests copy it); objects packed so that copies are quick.
    clone = ConfigRepo.open_or_clone(root / "clone", str(repo.origin))
    clone.fetch("main")
    for git_dir in (repo.origin, repo.path / ".git", root / "clone"):
        subprocess.run(["git", "-C", str(git_dir), "repack", "-adq"], check=True)
        subprocess.run(["git", "-C", str(git_dir), "pack-refs", "--all"], check=True)
    return root


@pytest.fixture
def branch_repo(_branch_repo_template, tmp_path, settings, db) -> WorkRepo:
    """The standard layout on origin with ``TEST_BRANCH`` and ``TLS_BRANCH`` pushed (not synced)."""
    root = tmp_path / "git"
    shutil.copytree(_branch_repo_template, root, symlinks=True)
    repo = WorkRepo.existing(root)
    repo.git("remote", "set-url", "origin", str(repo.origin))
    settings.CMDB_REPO_URL = str(repo.origin)
    settings.CMDB_CLONE_DIR = root / "clone"  # its origin URL is corrected on first use
    return repo


@pytest.fixture
def shared_branch_repo(_branch_repo_template, settings, db) -> WorkRepo:
    """The session's template itself, for tests whose requests only fetch and read Git (never push,
    never commit): no copy at all. Anything that writes to origin uses ``branch_repo``."""
    repo = WorkRepo.existing(_branch_repo_template)
    settings.CMDB_REPO_URL = str(repo.origin)
    settings.CMDB_CLONE_DIR = _branch_repo_template / "clone"
    return repo
