"""The real test services start and answer: redis-server (PING) and sshd (a command over ssh)."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.services import find_binary, start_redis, start_sshd

pytestmark = pytest.mark.services

# scripts/test.sh (and so CI) sets CMDB_TEST_SERVICES=1: there a missing binary is a failure.
SERVICES_REQUIRED = bool(os.environ.get("CMDB_TEST_SERVICES"))


def require_binaries(*names: str) -> None:
    missing = [name for name in names if find_binary(name) is None]
    if missing and not SERVICES_REQUIRED:
        pytest.skip(f"not installed: {', '.join(missing)} (run make system-packages)")


def test_redis_answers_ping(tmp_path):
    require_binaries("redis-server")
    import redis

    url, handle = start_redis(tmp_path)
    try:
        client = redis.Redis.from_url(url, socket_timeout=5)
        assert client.ping() is True
        client.set("cmportal-smoke", "1")
        assert client.get("cmportal-smoke") == b"1"
        client.close()
    finally:
        handle.stop()
    assert not handle.alive()


def test_sshd_runs_a_command_with_strict_host_key_checking(tmp_path):
    require_binaries("sshd", "ssh", "ssh-keygen")
    sshd = start_sshd(tmp_path)
    try:
        assert sshd.host == "127.0.0.1" and sshd.port > 0 and sshd.user
        assert sshd.key_path.is_file() and sshd.known_hosts_path.is_file()
        result = subprocess.run(
            [
                "ssh",
                "-o", "BatchMode=yes",
                "-o", "IdentitiesOnly=yes",
                "-o", "IdentityAgent=none",
                "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={sshd.known_hosts_path}",
                "-o", "GlobalKnownHostsFile=/dev/null",
                "-i", str(sshd.key_path),
                "-p", str(sshd.port),
                f"{sshd.user}@{sshd.host}",
                "echo", "ok",
            ],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=30,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "ok"

        # A host key that does not match known_hosts is refused (the check is really strict).
        wrong = tmp_path / "wrong_known_hosts"
        key_type, key = sshd.known_hosts_path.read_text().split()[1:3]
        wrong.write_text(f"[127.0.0.1]:{sshd.port} {key_type} {key[:-8]}AAAAAAAA\n")
        refused = subprocess.run(
            [
                "ssh",
                "-o", "BatchMode=yes",
                "-o", "IdentitiesOnly=yes",
                "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={wrong}",
                "-o", "GlobalKnownHostsFile=/dev/null",
                "-i", str(sshd.key_path),
                "-p", str(sshd.port),
                f"{sshd.user}@{sshd.host}",
                "echo", "ok",
            ],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=30,
        )  # fmt: skip
        assert refused.returncode != 0
        assert "ok" not in refused.stdout

        # git over ssh to a bare repository owned by the test account.
        repo = sshd.init_bare_repo("smoke.git")
        env = {**os.environ, "GIT_SSH_COMMAND": sshd.git_ssh_command}
        env.pop("SSH_AUTH_SOCK", None)
        ls = subprocess.run(
            ["git", "ls-remote", sshd.url(repo)], capture_output=True, text=True, env=env, timeout=30
        )
        assert ls.returncode == 0, ls.stderr
    finally:
        sshd.stop()
    assert not sshd.alive()
    assert not sshd.authorized_keys_path.exists()
