"""The production shape, for real: the commands docker-compose.yml runs (gunicorn with the production
settings and DJANGO_DEBUG=false, a prefork Celery worker, beat), a real Redis with append-only
persistence and a real PostgreSQL, driven over HTTP as people and pipelines use the portal. Then the
faults: a worker killed mid-audit and mid-dry-run, Redis and PostgreSQL restarted under load, an
origin that cannot be reached and an SSH machine that refuses."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.gitutil import WorkRepo, on_branch
from tests.production import ROOT, Postgres, Proc, Redis, compose_commands, start_postgres
from tests.services import find_binary, free_port, start_sshd

pytestmark = [pytest.mark.services]
PASSWORD = "demo-password-1"
MACHINES = [f"prod/m{i:02d}" for i in range(1, 13)]


def _need() -> None:
    missing = [n for n in ("redis-server", "sshd", "initdb") if find_binary(n) is None
               and not list(Path("/usr/lib/postgresql").glob(f"*/bin/{n}"))]
    if missing:
        if os.environ.get("CMDB_TEST_SERVICES"):
            pytest.fail(f"not installed: {missing} (make system-packages)")
        pytest.skip(f"not installed: {missing}")


def build_origin(repo: WorkRepo, live: Path, ssh) -> None:
    repo.write("README.md", "# Infrastructure\n")
    repo.write("prod/README.md", "# Production\n")
    for machine in MACHINES:
        name = machine.split("/")[1]
        repo.write(f"{machine}/README.md", f"# {name}\n")
        repo.write(f"{machine}/manifest.toml", f'[machine]\ntransport = "local"\nroot = "{live / name}"\n')
        repo.write(f"{machine}/app/files/etc/app.conf", f"name = {name}\n")
        (live / name / "etc").mkdir(parents=True)
        (live / name / "etc" / "app.conf").write_text(f"name = {name}\n")
    repo.write("prod/ssh1/manifest.toml",
               f'[machine]\ntransport = "ssh"\nhost = "127.0.0.1"\nport = {ssh.port}\nuser = "{ssh.user}"\n')
    repo.write("prod/ssh1/app/files/etc/hostname", "ssh1\n")
    repo.commit("Initial layout")
    on_branch(repo, "change/tune", {"prod/m01/app/files/etc/app.conf": "name = m01\nworkers = 4\n"}, message="Tune m01")


class Portal:
    """The running stack and an HTTP client per person."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.pg: Postgres = start_postgres(tmp)
        self.redis = Redis(tmp / "redis", port=free_port())
        self.redis.workdir.mkdir()
        self.redis.start()
        self.ssh = start_sshd(tmp / "sshd")
        self.live = tmp / "live"
        self.live.mkdir()
        self.origin = WorkRepo(tmp / "git")
        build_origin(self.origin, self.live, self.ssh)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CMDB_"))}
        self.env.update({
            "DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": "production-shape-" + os.urandom(16).hex(),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1", "DJANGO_SECURE_COOKIES": "false",
            "DJANGO_SECURE_SSL_REDIRECT": "false", "DJANGO_SECURE_HSTS_SECONDS": "0",
            "DATABASE_URL": self.pg.url, "REDIS_URL": self.redis.url, "CMDB_DATA_DIR": str(tmp / "data"),
            "CMDB_REPO_URL": str(self.origin.origin), "CMDB_LOCAL_ROOT_BASE": str(self.live),
            "CMDB_SSH_KEY": str(self.ssh.key_path), "CMDB_SSH_KNOWN_HOSTS": str(self.ssh.known_hosts_path),
            "CMDB_SSH_CONNECT_TIMEOUT": "3", "CMDB_AUDIT_BATCH": "1", "CMDB_DRY_RUN_BATCH": "1",
            "CMDB_BROKER_VISIBILITY_TIMEOUT": "10", "CMDB_API_RATE_USER": "100000/min",
            "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend", "PYTHONUNBUFFERED": "1",
        })
        self.procs: dict[str, Proc] = {}
        commands = compose_commands()
        *setup, gunicorn = commands["web"]
        for argv in setup:  # migrate, collectstatic: as the web service runs them before gunicorn
            subprocess.run(argv, cwd=ROOT, env=self.env, check=True, capture_output=True, timeout=300)
        self.manage("demo_users", "--password", PASSWORD)
        gunicorn = [a if a != "0.0.0.0:8000" else f"127.0.0.1:{self.port}" for a in gunicorn]
        gunicorn = [a if a != "3" else "2" for a in gunicorn]  # --workers 3 -> 2 on this 2-core machine
        self.procs["web"] = Proc("web", gunicorn, self.env, tmp / "web.log").start()
        self.worker_argv = [*commands["worker"][0], "--concurrency", "2"]
        self.start_worker()
        self.procs["beat"] = Proc("beat", [*commands["beat"][0][:-2], "--pidfile", str(tmp / "beat.pid"),
                                           "--schedule", str(tmp / "beat-schedule")], self.env,
                                  tmp / "beat.log").start()
        self.wait_http()
        self.tokens = {u: self.manage("token_create", u).strip() for u in ("demo", "requester", "approver")}

    def manage(self, *args: str) -> str:
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, check=True,
                              capture_output=True, text=True, timeout=300).stdout

    def start_worker(self) -> None:
        n = sum(1 for k in self.procs if k.startswith("worker"))
        self.procs[f"worker{n}"] = Proc(f"worker{n}", self.worker_argv + ["-n", f"w{n}@%h"], self.env,
                                         self.tmp / f"worker{n}.log").start()

    def kill_workers(self) -> None:
        for name, proc in self.procs.items():
            if name.startswith("worker"):
                proc.kill(signal.SIGKILL)

    def supervise(self) -> None:
        """What the compose file's `restart: unless-stopped` does: a process that exited by itself
        (not killed by the test) is started again."""
        for proc in self.procs.values():
            if proc.exited():
                proc.start()

    def wait_http(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(self.base + "/accounts/login/", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError("gunicorn did not answer:\n" + self.procs["web"].tail())

    def api(self, user: str, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, self.base + path, timeout=30,
                                headers={"Authorization": f"Token {self.tokens[user]}"}, **kwargs)

    def browser(self, user: str) -> requests.Session:
        """A person's session: the login form with its CSRF token, as a browser sends it."""
        s = requests.Session()
        page = s.get(self.base + "/accounts/login/", timeout=30)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        r = s.post(self.base + "/accounts/login/", data={"username": user, "password": PASSWORD,
                                                         "csrfmiddlewaretoken": token},
                   headers={"Referer": self.base + "/accounts/login/"}, timeout=30, allow_redirects=False)
        assert r.status_code == 302, r.text[:500]
        return s

    def wait_for(self, path: str, done, timeout: float = 120, user: str = "demo") -> dict:
        deadline = time.monotonic() + timeout
        body: dict = {}
        while time.monotonic() < deadline:
            self.supervise()
            try:
                r = self.api(user, "GET", path)
                if r.status_code == 200:
                    body = r.json()
                    if done(body):
                        return body
            except requests.RequestException:
                pass
            time.sleep(0.5)
        logs = "\n".join(f"--- {n}\n{p.tail()}" for n, p in self.procs.items())
        raise AssertionError(f"{path} not done after {timeout}s: {str(body)[:800]}\n{logs}")

    def close(self) -> None:
        for proc in self.procs.values():
            proc.kill(signal.SIGKILL)
        self.redis.stop()
        self.ssh.stop()
        self.pg.remove()


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    _need()
    stack = Portal(tmp_path_factory.mktemp("production"))
    try:
        r = stack.api("demo", "POST", "/api/sync/")
        assert r.status_code in (200, 202), r.text
        stack.wait_for("/api/sync/", lambda b: (b.get("indexed_commit") or {}).get("sha"))
        yield stack
    finally:
        stack.close()


def _audit(portal: Portal) -> int:
    r = portal.api("demo", "POST", "/api/audits/", json={"scope": "prod"})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def _exactly_once(run: dict) -> None:
    machines = [m["machine_path"] for m in run["machines"]]
    assert sorted(machines) == sorted(set(machines)) and len(machines) == run["machines_total"], machines


def test_people_and_pipelines_use_the_portal_over_http(portal):
    # a pipeline opens and submits a change request; an approver approves it
    r = portal.api("requester", "POST", "/api/changes/", json={"branch": "change/tune", "title": "Tune m01",
                                                              "type": "normal", "risk": "low"})
    assert r.status_code == 201, r.text
    change = r.json()["id"]
    assert portal.api("requester", "POST", f"/api/changes/{change}/submit/").status_code == 200
    approve = portal.api("approver", "POST", f"/api/changes/{change}/approve/", json={"comment": "ok"})
    assert approve.status_code == 200 and approve.json()["state"] == "approved", approve.text
    # a dry run of the change, through Redis and the worker
    job = portal.api("requester", "POST", f"/api/changes/{change}/dry-run/", json={})
    assert job.status_code == 202, job.text
    body = portal.wait_for(f"/api/jobs/{job.json()['id']}/", lambda b: b["state"] in ("succeeded", "failed"))
    assert body["state"] == "succeeded"
    m01 = next(p for p in body["plans"] if p["machine_path"] == "prod/m01")
    assert [i["action"] for i in m01["items"]] == ["update"]
    # an audit of everything
    run = portal.wait_for(f"/api/audits/{_audit(portal)}/", lambda b: b["state"] != "running" and b["state"] != "queued")
    assert run["state"] == "succeeded", run
    _exactly_once(run)
    # a person reads the home page and the change page in the browser
    person = portal.browser("viewer")
    home = person.get(portal.base + "/", timeout=30)
    assert home.status_code == 200 and "Does everything still work?" in home.text
    assert person.get(portal.base + f"/changes/{change}/", timeout=30).status_code == 200
    assert "Content-Security-Policy" in home.headers


def test_a_killed_worker_loses_no_batch_of_an_audit_or_a_dry_run(portal):
    for kind in ("audit", "dry run"):
        if kind == "audit":
            path = f"/api/audits/{_audit(portal)}/"
        else:
            r = portal.api("demo", "POST", "/api/dry-runs/", json={"revision": "main"})
            assert r.status_code == 202, r.text
            path = f"/api/jobs/{r.json()['id']}/"
        portal.wait_for(path, lambda b: b["machines_done"] >= 1 or b["state"] not in ("queued", "running"), timeout=60)
        portal.kill_workers()  # SIGKILL, the whole process group: batches in flight are lost with it
        started = time.monotonic()
        portal.start_worker()
        body = portal.wait_for(path, lambda b: b["state"] not in ("queued", "running"), timeout=120)
        assert body["state"] == "succeeded", (kind, body.get("error"), body.get("machines_missing"))
        assert body["machines_done"] == body["machines_total"] == len(MACHINES) + 1
        assert time.monotonic() - started < 120
        if kind == "audit":
            _exactly_once(body)
        else:
            plans = [p["machine_path"] for p in body["plans"]]
            assert len(plans) == len(set(plans)) == body["machines_total"]


def test_redis_and_postgresql_restart_under_load(portal):
    person = portal.browser("viewer")
    path = f"/api/audits/{_audit(portal)}/"
    portal.redis.stop()
    portal.redis.start()  # same port, same directory: the append-only file brings the queue back
    portal.pg.stop()
    outage = person.get(portal.base + "/", timeout=30)  # answered at once, cleanly: an error page
    assert outage.status_code in (500, 503) and "Traceback" not in outage.text
    portal.pg.start()
    deadline = time.monotonic() + 30
    while person.get(portal.base + "/", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "the portal did not recover after PostgreSQL came back"
        time.sleep(0.5)
    body = portal.wait_for(path, lambda b: b["state"] not in ("queued", "running"), timeout=180)
    assert body["state"] == "succeeded", (body.get("error"), body.get("machines_missing"))
    _exactly_once(body)


def test_an_unreachable_origin_and_a_refusing_machine_give_clear_errors(portal):
    before = portal.api("viewer" if "viewer" in portal.tokens else "demo", "GET", "/api/machines/").json()["count"]
    moved = portal.origin.origin.with_name("moved-away.git")
    portal.origin.origin.rename(moved)
    try:
        assert portal.api("demo", "POST", "/api/sync/").status_code in (200, 202)
        state = portal.wait_for("/api/sync/", lambda b: (b.get("last_run") or {}).get("status") == "failed"
                                or b.get("last_error"), timeout=60)
        assert "origin" in str(state).lower() or "fetch" in str(state).lower(), state
        assert portal.api("demo", "GET", "/api/machines/").json()["count"] == before  # the index is kept
    finally:
        moved.rename(portal.origin.origin)
    portal.ssh.stop()  # the SSH machine now refuses connections
    body = portal.wait_for(f"/api/audits/{_audit(portal)}/", lambda b: b["state"] not in ("queued", "running"))
    ssh1 = next(m for m in body["machines"] if m["machine_path"] == "prod/ssh1")
    assert ssh1["status"] == "unreachable" and ssh1["reason"]
    findings = portal.api("demo", "GET", "/api/findings/", params={"machine": "prod/ssh1"}).json()
    assert findings["count"] == 0
