"""A worker SIGKILLed in the middle of a deploy, for real: a PostgreSQL cluster, a redis-server and
`celery -A portal worker` subprocesses of their own (tests/production.py), four local machines and
one SSH machine on a loopback sshd whose reload is slow, so the worker is certainly inside the deploy
when it dies. Nothing half-written is left, the lost batch is not run again by the next worker, the
reaper ends the job `interrupted` with its backups named, and a restore puts the old files back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import redis

from tests.fixtures.worker import need
from tests.gitutil import WorkRepo, on_branch
from tests.production import ROOT, Proc, Redis, compose_commands, start_postgres
from tests.services import free_port, start_sshd

pytestmark = [pytest.mark.services]

LOCAL = ["prod/m1", "prod/m2", "prod/m4", "prod/m5"]
SSH = "prod/m3"  # in the second batch after m2: the worker dies in its reload, m4 and m5 untouched
OLD, NEW = "workers = 2\n", "workers = 4\n"

# Runs in `manage.py shell` with the stack's environment. Tasks run eagerly (in that process) up to
# the reviewed plan; the deploy itself goes through Redis to the worker subprocess.
PREPARE = """
import json
from django.core.management import call_command
from django.utils import timezone
from datetime import timedelta
from django.contrib.auth import get_user_model
from changes import services as changes
from cmdb import services as cmdb
from deploys import rollout, services as dryruns
from portal.celery import app

app.conf.task_always_eager = True
call_command("demo_users", "--password", "pw-not-used-1")
users = get_user_model().objects
requester, approver = users.get(username="requester"), users.get(username="approver")
cmdb.repo_sync(trigger="command")
now = timezone.now()
cr = changes.change_create(acting_user=requester, branch="change/workers", title="More workers",
                           planned_start=now - timedelta(hours=1), planned_end=now + timedelta(hours=1))
changes.change_submit(change=cr, acting_user=requester)
changes.change_approve(change=cr, acting_user=approver)
cr = changes.change_implement(change=cr, acting_user=approver)
plan = dryruns.dryrun_start(acting_user=approver, change=cr)
plan.refresh_from_db()
statuses = dict(plan.plans.values_list("machine_path", "status"))
app.conf.task_always_eager = False
job = rollout.deploy_start(acting_user=approver, change=cr)
print(json.dumps({"plan": plan.state, "statuses": statuses, "job": job.pk}))
"""
REAP = """
from deploys.services import dryrun_reap_stale
print(dryrun_reap_stale())
"""
RESTORE = """
from django.contrib.auth import get_user_model
from deploys import rollout
from deploys.models import Job
approver = get_user_model().objects.get(username="approver")
print(rollout.restore_start(acting_user=approver, deploy=Job.objects.get(pk=%d)).pk)
"""


class Stack:
    """PostgreSQL, Redis, an sshd, the origin repository, the machines' trees and the workers."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.workers: list[Proc] = []
        self.pg = start_postgres(tmp)
        self.redis = Redis(tmp / "redis", port=free_port())
        self.redis.workdir.mkdir()
        self.redis.start()
        self.ssh = start_sshd(tmp / "sshd")
        self.live, self.backups = tmp / "live", tmp / "backups"
        self.remote = self.ssh.workdir / "m3"  # the SSH machine's tree, the ssh user's to write
        self.marker = self.ssh.workdir / "reload-started"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CMDB_", "CELERY_"))}
        self.env.update({
            "DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": "killed-worker-" + os.urandom(16).hex(),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1", "DATABASE_URL": self.pg.url, "REDIS_URL": self.redis.url,
            "CMDB_DATA_DIR": str(tmp / "data"), "CMDB_LOCAL_ROOT_BASE": str(self.live),
            "CMDB_SSH_KEY": str(self.ssh.key_path), "CMDB_SSH_KNOWN_HOSTS": str(self.ssh.known_hosts_path),
            "CMDB_SSH_CONNECT_TIMEOUT": "5", "CMDB_DEPLOY_ENVIRONMENTS": "prod", "CMDB_DEPLOY_CANARY": "1",
            "CMDB_DEPLOY_BATCH": "10", "CMDB_DEPLOY_BACKUP_DIR": str(self.backups),
            "CMDB_BROKER_VISIBILITY_TIMEOUT": "5", "PYTHONUNBUFFERED": "1",
            "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend",
        })

    def build(self) -> None:
        repo = WorkRepo(self.tmp / "git")
        self.env["CMDB_REPO_URL"] = str(repo.origin)
        repo.write("README.md", "# Infrastructure\n")
        repo.write("prod/README.md", "# Production\n")
        branch: dict[str, str] = {}
        for machine in LOCAL:
            name = machine.split("/")[1]
            repo.write(f"{machine}/manifest.toml", f'[machine]\ntransport = "local"\nroot = "{name}"\n')
            repo.write(f"{machine}/app/files/etc/app.conf", OLD)
            (self.live / name / "etc").mkdir(parents=True)
            (self.live / name / "etc/app.conf").write_text(OLD)
            branch[f"{machine}/app/files/etc/app.conf"] = NEW
            branch[f"{machine}/app/files/etc/extra.conf"] = "extra\n"  # created by the deploy
        (self.remote / "etc").mkdir(parents=True)
        (self.remote / "etc/app.conf").write_text(OLD)
        for path in (self.remote, self.remote / "etc", self.remote / "etc/app.conf"):
            os.chown(path, self.ssh.workdir.stat().st_uid, self.ssh.workdir.stat().st_gid)
        repo.write(f"{SSH}/manifest.toml", f'[machine]\ntransport = "ssh"\nhost = "127.0.0.1"\n'
                                           f'port = {self.ssh.port}\nuser = "{self.ssh.user}"\n')
        repo.write(f"{SSH}/app/manifest.toml", f'[deploy]\nreload = ["touch {self.marker}", "sleep 30"]\n')
        repo.write(f"{SSH}/app/files{self.remote}/etc/app.conf", OLD)
        branch[f"{SSH}/app/files{self.remote}/etc/app.conf"] = NEW
        repo.commit("Initial layout")
        on_branch(repo, "change/workers", branch, message="More workers")

    def manage(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""

    def start_worker(self) -> Proc:
        n = len(self.workers)
        argv = [*compose_commands()["worker"][0], "--concurrency", "1", "-n", f"w{n}@%h"]
        worker = Proc(f"worker{n}", argv, self.env, self.tmp / f"worker{n}.log").start()
        self.workers.append(worker)
        return worker

    def sql(self, query: str, *params) -> list[tuple]:
        with psycopg.connect(self.pg.url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def job(self, pk: int) -> dict:
        (state, error, missing, done), = self.sql(
            "SELECT state, error, machines_missing, machines_done FROM changes_dryrunjob WHERE id = %s", pk)
        rows = dict(self.sql("SELECT machine_path, status FROM changes_machineplan WHERE job_id = %s", pk))
        return {"state": state, "error": error, "missing": missing, "done": done, "rows": rows}

    def logs(self) -> str:
        return "\n".join(f"--- {w.name}\n{w.tail()}" for w in self.workers)

    def close(self) -> None:
        for worker in self.workers:
            worker.kill(signal.SIGKILL)
        self.redis.stop()
        self.ssh.stop()
        self.pg.remove()


@pytest.fixture
def stack(tmp_path_factory):
    need("redis-server", "sshd", "ssh-keygen")
    built = Stack(tmp_path_factory.mktemp("killdeploy"))
    try:
        built.build()
        built.manage("migrate", "--noinput")
        yield built
    finally:
        built.close()


def trees(stack: Stack) -> dict[str, tuple[bytes, int]]:
    """Every file of every machine: its bytes and mtime."""
    out = {}
    for root in [stack.live / m.split("/")[1] for m in LOCAL] + [stack.remote]:
        for path in sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink()):
            out[str(path)] = (path.read_bytes(), path.lstat().st_mtime_ns)
    return out


def wait(check, what: str, stack: Stack, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what} not after {timeout}s\n{stack.logs()}"
        time.sleep(0.2)
    return found


def test_a_worker_killed_mid_deploy_leaves_whole_files_no_rerun_and_a_restorable_interrupted_job(stack):
    worker = stack.start_worker()
    prepared = json.loads(stack.manage("shell", "-c", PREPARE))
    assert prepared["plan"] == "succeeded" and set(prepared["statuses"].values()) == {"planned"}, prepared
    job = prepared["job"]

    # The worker is certainly inside the deploy: m1 (canary) and m2 stored, m3's files written and its
    # reload sleeping.
    wait(stack.marker.exists, "the reload of m3", stack)
    assert stack.job(job)["rows"] == {"prod/m1": "applied", "prod/m2": "applied"}
    worker.kill(signal.SIGKILL)  # the whole process group: the pool child dies with it
    # Acknowledged on receipt: the batch in flight is not waiting in the broker to be delivered again.
    assert redis.Redis.from_url(stack.redis.url).hlen("unacked") == 0

    before = trees(stack)
    assert not [p for p in before if ".cmdb-" in Path(p).name], before.keys()
    for machine, wanted in (("m1", NEW), ("m2", NEW), ("m4", OLD), ("m5", OLD)):
        assert (stack.live / machine / "etc/app.conf").read_text() == wanted, machine
        assert (stack.live / machine / "etc/extra.conf").exists() == (wanted == NEW), machine
    assert (stack.remote / "etc/app.conf").read_text() == NEW  # written whole before its reload began

    # A new worker does not run the lost batch again: no write, no new row, for longer than the
    # broker's visibility timeout.
    stack.start_worker()
    wait(lambda: "ready" in stack.workers[1].tail(), "the second worker", stack)
    time.sleep(7)
    assert trees(stack) == before
    after = stack.job(job)
    assert (after["state"], after["rows"]) == ("running", {"prod/m1": "applied", "prod/m2": "applied"})

    # The reaper's clock is the job's row: no progress for longer than a batch may run.
    stack.sql("UPDATE changes_dryrunjob SET progress_at = now() - interval '2 hours' WHERE id = %s", job)
    assert stack.manage("shell", "-c", REAP) == "1"
    reaped = stack.job(job)
    assert reaped["state"] == "interrupted", reaped
    assert f"{stack.backups}/{job}" in reaped["error"], reaped["error"]
    assert reaped["missing"] == ["prod/m4", "prod/m5"], reaped  # untouched
    assert reaped["rows"][SSH] == "interrupted", reaped  # written, its reload cut short: restorable
    for machine in ("prod__m1", "prod__m2", "prod__m3"):
        assert json.loads((stack.backups / str(job) / machine / "backup.json").read_text())["files"], machine
    assert not (stack.backups / str(job) / "prod__m4").exists()

    restore = int(stack.manage("shell", "-c", RESTORE % job))
    done = wait(lambda: (j := stack.job(restore))["state"] not in ("queued", "running") and j, "the restore", stack)
    assert done["state"] == "succeeded", (done, stack.logs())
    assert done["rows"] == {"prod/m1": "applied", "prod/m2": "applied", SSH: "applied"}
    for machine in ("m1", "m2", "m4", "m5"):
        assert (stack.live / machine / "etc/app.conf").read_text() == OLD, machine
        assert not (stack.live / machine / "etc/extra.conf").exists(), machine
    assert (stack.remote / "etc/app.conf").read_text() == OLD
    assert not [p for p in trees(stack) if ".cmdb-" in Path(p).name]
