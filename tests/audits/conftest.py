"""An audit-ready repository on origin: local machines with drift of every kind, a manual machine, a
machine with a malformed manifest and an SSH machine nobody answers for."""

from __future__ import annotations

import os

import asyncssh
import pytest

from tests.fixtures.dryrun_repo import build_machines, build_repo
from tests.services import free_port

OWNED = """[[file]]
path = "/etc/owned.conf"
owner = "nobody-such-user"
group = "nogroup-such"
"""


@pytest.fixture
def audit_env(work_repo, tmp_path, settings, db):
    """main holds prod/web1 (local: content and mode drift, a secret), prod/web2 (local: missing,
    owner/group, unreadable), prod/bad1 (local: its one file missing), prod/broken (malformed manifest),
    prod/db1 (manual), prod/ssh1 (SSH on a closed port) and test/t1 (compliant)."""
    machines = tmp_path / "live"
    machines.mkdir()
    build_machines(machines)
    settings.CMDB_LOCAL_ROOT_BASE = machines
    key = asyncssh.generate_private_key("ssh-ed25519")
    (tmp_path / "id").write_bytes(key.export_private_key())
    (tmp_path / "known_hosts").write_text("")
    settings.CMDB_SSH_KEY = str(tmp_path / "id")
    settings.CMDB_SSH_KNOWN_HOSTS = str(tmp_path / "known_hosts")
    settings.CMDB_SSH_CONNECT_TIMEOUT = 3
    settings.CMDB_AUDIT_BATCH = 2

    work_repo.write("prod/web2/README.md", "# web2\n")
    work_repo.write("prod/web2/manifest.toml", '[machine]\ntransport = "local"\nroot = "machines/web2"\n')
    work_repo.write("prod/web2/app/README.md", "# app\n")
    work_repo.write("prod/web2/app/manifest.toml", OWNED)
    work_repo.write("prod/web2/app/files/etc/missing.conf", "declared but absent\n")
    work_repo.write("prod/web2/app/files/etc/owned.conf", "owned\n")
    work_repo.write("prod/web2/app/files/etc/dir.conf", "a directory lives here\n")
    work_repo.write("prod/broken/manifest.toml", '[machine]\ntransport = "telnet"\n')
    work_repo.write("prod/broken/app/files/etc/x.conf", "x\n")
    work_repo.write("test/README.md", "# Test\n")
    work_repo.write("test/t1/manifest.toml", '[machine]\ntransport = "local"\nroot = "machines/t1"\n')
    work_repo.write("test/t1/app/files/etc/t.conf", "fine\n")
    branch = build_repo(work_repo, ssh_port=free_port())  # commits everything above on main

    web2 = machines / "machines" / "web2" / "etc"
    web2.mkdir(parents=True)
    (web2 / "owned.conf").write_text("owned\n")
    (web2 / "owned.conf").chmod(0o644)
    (web2 / "dir.conf").mkdir()
    t1 = machines / "machines" / "t1" / "etc"
    t1.mkdir(parents=True)
    (t1 / "t.conf").write_text("fine\n")
    os.chmod(t1 / "t.conf", 0o644)
    return {"repo": work_repo, "branch": branch, "machines": machines}


@pytest.fixture
def run_audit(django_capture_on_commit_callbacks):
    """``run_audit(**audit_start kwargs)``: start an audit, run its (eager) tasks, return the fresh run."""
    from audits import services

    def go(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            run = services.audit_start(**kwargs)
        run.refresh_from_db()
        return run

    return go
