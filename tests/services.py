"""Real services for tests: redis-server and sshd on free loopback ports, in temporary directories.

Pure Python (no Django import), usable from fixtures::

    url, redis = start_redis(tmp_path)
    try: ...
    finally: redis.stop()

    with start_sshd(tmp_path) as sshd:
        subprocess.run([*sshd.ssh_args(), "echo", "ok"], check=True)
        repo = sshd.init_bare_repo("cfg.git")       # owned by sshd.user, under its home
        url = sshd.url(repo)                         # ssh://cmtest@127.0.0.1:PORT/home/cmtest/...
        env = {"GIT_SSH_COMMAND": sshd.git_ssh_command}

Each service is started by absolute path with ``&``-style ``Popen`` and stopped by its own PID.
sshd needs root: it creates a local account (``cmtest``), unlocks it with ``usermod -p '*'`` (a
locked account is refused with ``UsePAM no``) and keeps ``authorized_keys`` in that account's home
(StrictModes refuses one under /tmp). Every sshd instance has its own host key, client key,
authorized-keys file and known_hosts file, so several can run at once.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ServiceError",
    "ServiceHandle",
    "SshdHandle",
    "find_binary",
    "free_port",
    "start_redis",
    "start_sshd",
]

TEST_USER = "cmtest"
_SBIN_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin")


class ServiceError(RuntimeError):
    """A service could not be started; the message includes the tail of its log."""


def find_binary(name: str) -> str | None:
    """Absolute path of ``name`` on PATH or in the usual sbin directories (not always on PATH)."""
    found = shutil.which(name)
    if found:
        return found
    for directory in _SBIN_DIRS:
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _require(name: str) -> str:
    path = find_binary(name)
    if path is None:
        raise ServiceError(f"{name} not found (make system-packages installs the test services)")
    return path


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (the caller retries if it is taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _tcp_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class ServiceHandle:
    """A started server process. ``stop()`` is idempotent; also a context manager."""

    name: str
    proc: subprocess.Popen
    log_path: Path
    _cleanups: list = field(default_factory=list, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        while self._cleanups:
            with contextlib.suppress(Exception):
                self._cleanups.pop()()

    def log(self) -> str:
        return _tail(self.log_path, 200)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


# --- redis -------------------------------------------------------------------------------------------
def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(tmpdir: str | os.PathLike[str], *, timeout: float = 15.0) -> tuple[str, ServiceHandle]:
    """Start redis-server on a free loopback port; returns ``("redis://127.0.0.1:PORT/0", handle)``.

    No persistence (``--save ''``, no AOF); its working directory and log are under ``tmpdir``.
    """
    server = _require("redis-server")
    last_error = ""
    for _attempt in range(3):
        port = free_port()
        workdir = Path(tmpdir) / f"redis-{port}"
        workdir.mkdir(parents=True, exist_ok=True)
        log_path = workdir / "redis.log"
        cmd = [
            server,
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(workdir),
            "--daemonize", "no",
            "--logfile", str(log_path),
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        handle = ServiceHandle("redis", proc, log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if _redis_ping(port):
                return f"redis://127.0.0.1:{port}/0", handle
            time.sleep(0.05)
        handle.stop()
        last_error = f"redis-server on port {port} did not answer PING:\n{_tail(log_path)}"
    raise ServiceError(last_error)


# --- sshd --------------------------------------------------------------------------------------------
@dataclass
class SshdHandle(ServiceHandle):
    """sshd on ``host:port`` that lets ``user`` in with the private key at ``key_path``."""

    host: str = "127.0.0.1"
    port: int = 0
    user: str = TEST_USER
    home: Path = Path("/")
    key_path: Path = Path("/")
    known_hosts_path: Path = Path("/")
    authorized_keys_path: Path = Path("/")
    workdir: Path = Path("/")  # per-instance directory owned by ``user``, under its home

    @property
    def ssh_options(self) -> list[str]:
        return [
            "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes",
            "-o", "IdentityAgent=none",
            "-o", f"UserKnownHostsFile={self.known_hosts_path}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "ConnectTimeout=10",
            "-i", str(self.key_path),
        ]  # fmt: skip

    def ssh_args(self) -> list[str]:
        """``ssh ... user@host`` — append the remote command."""
        return ["ssh", *self.ssh_options, "-p", str(self.port), f"{self.user}@{self.host}"]

    @property
    def git_ssh_command(self) -> str:
        """Value for ``GIT_SSH_COMMAND`` (git adds ``-p PORT`` from an ``ssh://`` URL itself)."""
        return shlex.join(["ssh", *self.ssh_options])

    def url(self, path: str | os.PathLike[str]) -> str:
        """``ssh://user@127.0.0.1:PORT/abs/path`` for git."""
        return f"ssh://{self.user}@{self.host}:{self.port}{Path(path).as_posix()}"

    def run_as_user(self, *cmd: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        """Run a local command as ``user`` (in ``workdir``), e.g. to prepare a server-side repository."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run(
            ["runuser", "-u", self.user, "--", *cmd], cwd=self.workdir, check=check, **kwargs
        )

    def init_bare_repo(self, name: str = "config.git", branch: str = "main") -> Path:
        """Create a bare git repository owned by ``user`` in ``workdir``; returns its path."""
        path = self.workdir / name
        self.run_as_user("git", "init", "--quiet", "--bare", f"--initial-branch={branch}", str(path))
        return path


def _ensure_user(user: str) -> pwd.struct_passwd:
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        result = subprocess.run(
            [_require("useradd"), "--create-home", "--shell", "/bin/bash", user],
            capture_output=True,
            text=True,
        )
        try:  # a concurrent test run may have created it first
            entry = pwd.getpwnam(user)
        except KeyError:
            raise ServiceError(f"useradd {user} failed: {result.stderr.strip()}") from None
    # useradd leaves the account locked ('!'); sshd refuses locked accounts without PAM.
    subprocess.run([_require("usermod"), "-p", "*", user], check=True, capture_output=True)
    home = Path(entry.pw_dir)
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path in (home, ssh_dir):
        os.chown(path, entry.pw_uid, entry.pw_gid)
    home.chmod(0o755)
    ssh_dir.chmod(0o700)
    return entry


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(
        [_require("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )


def start_sshd(
    tmpdir: str | os.PathLike[str], *, user: str = TEST_USER, timeout: float = 20.0
) -> SshdHandle:
    """Start sshd on a free loopback port with its own host key; returns a ready :class:`SshdHandle`.

    Ready means an ``ssh -o BatchMode=yes ... true`` with strict host key checking succeeded.
    """
    if os.geteuid() != 0:
        raise ServiceError("start_sshd needs root (it creates a local account and runs sshd)")
    sshd = _require("sshd")
    _require("ssh")
    entry = _ensure_user(user)
    Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)  # privilege-separation dir

    tag = uuid.uuid4().hex[:10]
    base = Path(tmpdir) / f"sshd-{tag}"
    base.mkdir(parents=True)
    host_key = base / "ssh_host_ed25519_key"
    client_key = base / "id_ed25519"
    _keygen(host_key, f"cmportal-test-host-{tag}")
    _keygen(client_key, f"cmportal-test-client-{tag}")

    home = Path(entry.pw_dir)
    authorized_keys = home / ".ssh" / f"authorized_keys.cmportal-{tag}"
    authorized_keys.write_text((client_key.with_suffix(".pub")).read_text())
    os.chown(authorized_keys, entry.pw_uid, entry.pw_gid)
    authorized_keys.chmod(0o600)
    workdir = home / f"cmportal-{tag}"
    workdir.mkdir(mode=0o755)
    os.chown(workdir, entry.pw_uid, entry.pw_gid)

    def remove_user_files() -> None:
        authorized_keys.unlink(missing_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)

    host_pub = host_key.with_suffix(".pub").read_text().split()
    last_error = ""
    for _attempt in range(3):
        port = free_port()
        known_hosts = base / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
        config = base / "sshd_config"
        log_path = base / "sshd.log"
        config.write_text(
            "\n".join(
                [
                    f"Port {port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {host_key}",
                    f"PidFile {base / 'sshd.pid'}",
                    f"AuthorizedKeysFile {authorized_keys}",
                    f"AllowUsers {user}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin no",
                    "UsePAM no",
                    "StrictModes yes",
                    "UseDNS no",
                    "PrintMotd no",
                    "MaxStartups 100:30:200",
                    "MaxSessions 50",
                    "LogLevel VERBOSE",
                    "Subsystem sftp internal-sftp",
                    "",
                ]
            )
        )
        check = subprocess.run([sshd, "-t", "-f", str(config)], capture_output=True, text=True)
        if check.returncode != 0:
            remove_user_files()
            raise ServiceError(f"sshd -t rejected {config}: {check.stderr.strip()}")
        proc = subprocess.Popen(
            [sshd, "-D", "-f", str(config), "-E", str(log_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        handle = SshdHandle(
            "sshd",
            proc,
            log_path,
            host="127.0.0.1",
            port=port,
            user=user,
            home=home,
            key_path=client_key,
            known_hosts_path=known_hosts,
            authorized_keys_path=authorized_keys,
            workdir=workdir,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if _tcp_open("127.0.0.1", port):
                break
            time.sleep(0.05)
        env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
        probe_error = ""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                probe = subprocess.run(
                    [*handle.ssh_args(), "true"],
                    capture_output=True,
                    text=True,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    timeout=max(1.0, deadline - time.monotonic()),
                )
            except subprocess.TimeoutExpired:
                probe_error = "ssh probe timed out"
                break
            if probe.returncode == 0:
                handle._cleanups.append(remove_user_files)
                return handle
            probe_error = probe.stderr.strip()
            time.sleep(0.1)
        handle.stop()
        last_error = f"sshd on port {port} not ready: {probe_error}\n{_tail(log_path)}"
    remove_user_files()
    raise ServiceError(last_error)
