"""The production shape on this machine: the commands docker-compose.yml runs (gunicorn with the
production settings, a prefork Celery worker, beat), a real Redis with the compose file's append-only
persistence and a PostgreSQL cluster of its own, each a process of its own that a test can kill,
stop and start again. Every process is stopped by its PID at the end, whatever happened.

The commands are read from docker-compose.yml, so the test runs what production runs."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.services import ServiceError, _redis_ping, _tail, find_binary, free_port

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def compose_commands() -> dict[str, list[list[str]]]:
    """Per service, the programs it runs, as argv lists with this machine's interpreter and venv."""
    out: dict[str, list[list[str]]] = {}
    for name in ("web", "worker", "beat"):
        command = COMPOSE["services"][name]["command"]
        parts = command[2].split("&&") if command[:2] == ["sh", "-c"] else [shlex.join(command)]
        argvs = []
        for part in parts:
            argv = [t for t in shlex.split(part) if t != "exec"]
            if argv[0] == "python":
                argv[0] = sys.executable
            elif (VENV_BIN / argv[0]).exists():
                argv[0] = str(VENV_BIN / argv[0])
            argvs.append(argv)
        out[name] = argvs
    return out


def redis_command() -> list[str]:
    return COMPOSE["services"]["redis"]["command"]


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen | None = None
    killed: bool = False  # by the test, on purpose: not to be restarted

    def start(self) -> Proc:
        out = open(self.log, "ab")  # noqa: SIM115 - the process writes it while it runs
        # A session of its own: a kill reaches the worker's pool children too.
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None and not self.killed

    def kill(self, sig: int = signal.SIGKILL) -> None:
        self.killed = True
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def tail(self) -> str:
        return _tail(self.log, 40)


@dataclass
class Postgres:
    root: Path
    port: int = 0
    bin: Path = Path()
    as_pg: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/cmportal"

    def _ctl(self, *args: str) -> None:
        subprocess.run([*self.as_pg, str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), *args],
                       cwd="/", check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._ctl("-l", str(self.root / "server.log"), "-w", "-t", "60", "-o",
                  f"-p {self.port} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self) -> None:
        if (self.root / "data" / "postmaster.pid").exists():
            self._ctl("-m", "fast", "-w", "-t", "60", "stop")

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres(tmp: Path) -> Postgres:
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not bins:
        raise ServiceError("no PostgreSQL server binaries (make system-packages)")
    # Outside pytest's temp dirs (mode 700, root's): the server runs as user postgres.
    pg = Postgres(root=Path(tempfile.mkdtemp(prefix="cmportal-prodpg-")), port=free_port(), bin=bins[-1])
    if os.geteuid() == 0:  # the server refuses to run as root
        pg.as_pg = ["runuser", "-u", "postgres", "--"]
        subprocess.run(["chown", "-R", "postgres:", str(pg.root)], check=True)
    subprocess.run([*pg.as_pg, str(pg.bin / "initdb"), "-D", str(pg.root / "data"), "-U", "postgres",
                    "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"], cwd="/", check=True, capture_output=True,
                   timeout=120)
    pg.start()
    subprocess.run([str(pg.bin / "psql"), "-X", "-q", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
                    "-d", "postgres", "-c", "CREATE DATABASE cmportal"], check=True, capture_output=True, timeout=60)
    return pg


@dataclass
class Redis:
    workdir: Path
    port: int = 0
    proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        server = find_binary("redis-server")
        if server is None:
            raise ServiceError("redis-server not installed (make system-packages)")
        argv = [server, *redis_command()[1:], "--bind", "127.0.0.1", "--port", str(self.port),
                "--dir", str(self.workdir), "--save", ""]
        self.proc = Proc("redis", argv, dict(os.environ), self.workdir / "redis.log").start()
        deadline = time.monotonic() + 15
        while not _redis_ping(self.port):
            if time.monotonic() > deadline:
                raise ServiceError(f"redis did not start:\n{self.proc.tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
