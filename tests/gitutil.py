"""A real Git working copy with a local bare origin, for tests (plain ``git`` commands)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.org",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.org",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
}


class WorkRepo:
    """A clone of ``origin`` where tests write files, commit and push."""

    def __init__(self, root: Path, *, create: bool = True):
        root.mkdir(parents=True, exist_ok=True)
        self.origin = root / "origin.git"
        self.path = root / "work"
        if not create:
            return
        self._git(["init", "-q", "--bare", "-b", "main", str(self.origin)], cwd=root)
        self._git(["init", "-q", "-b", "main", str(self.path)], cwd=root)
        self.git("remote", "add", "origin", str(self.origin))

    @classmethod
    def existing(cls, root: Path) -> WorkRepo:
        """A WorkRepo over a copy made earlier (origin.git and work/ already there)."""
        return cls(root, create=False)

    @staticmethod
    def _git(args: list[str], cwd: Path) -> str:
        env = {**os.environ, **GIT_ENV}
        return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout

    def git(self, *args: str) -> str:
        return self._git(list(args), cwd=self.path)

    def write(self, rel: str, content: str | bytes = "", *, mode: int | None = None) -> Path:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
        if mode is not None:
            target.chmod(mode)
        return target

    def remove(self, rel: str) -> None:
        self.git("rm", "-rq", rel)

    def symlink(self, rel: str, target: str) -> None:
        link = self.path / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, link)

    def commit(self, message: str = "change", *, push: bool = True, author: str | None = None) -> str:
        self.git("add", "-A")
        args = ["commit", "-q", "--allow-empty", "-m", message]
        if author:
            args += ["--author", author]
        self.git(*args)
        if push:
            self.push()
        return self.head()

    def push(self, branch: str = "main", *, force: bool = False) -> None:
        self.git("push", "-q", *(["--force"] if force else []), "origin", f"{branch}:{branch}")

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").strip()


def write_standard_layout(repo: WorkRepo) -> None:
    """A small repository following the convention, used by most tests."""
    repo.write("README.md", "# Infrastructure\n\nEnvironments: [production](production/README.md), [test](test/).\n")
    repo.write(".cmdb-secrets", "# secrets\n**/secrets/**\n*.vault\n")
    repo.write("production/README.md", "# Production\n\n![Topology](topology.svg)\n\nMachines: web1, db1.\n")
    repo.write("production/topology.svg", '<svg xmlns="http://www.w3.org/2000/svg"><rect width="10" height="10"/></svg>')
    repo.write("production/_common/README.md", "# Shared production steps\n\nInstall the TLS chain.\n")
    repo.write("production/_common/tls/fullchain.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    repo.write("production/web1/README.md", "# web1\n\nWeb server. See [shared steps](../_common/README.md).\n")
    repo.write("production/web1/nginx/README.md", "# nginx\n\n```nginx\nserver { listen 80; }\n```\n")
    repo.write("production/web1/nginx/files/etc/nginx/nginx.conf", "worker_processes 4;\nevents { worker_connections 1024; }\n")
    repo.write("production/web1/nginx/secrets/htpasswd", "admin:$apr1$abc$def\n")
    repo.write("production/db1/README.md", "# db1\n\nDatabase server running postgresql.\n")
    repo.write("production/db1/postgresql/README.md", "# postgresql\n\nTuning for the database.\n")
    repo.write("production/db1/postgresql/files/etc/postgresql/postgresql.conf", "shared_buffers = 1GB\n")
    repo.write("test/README.md", "# Test\n\nA copy of production.\n")
    repo.write("test/web-test1/README.md", "# web-test1\n")
    repo.write("test/web-test1/nginx/README.md", "# nginx (test)\n")
    repo.write("test/web-test1/nginx/files/etc/nginx/nginx.conf", "worker_processes 1;\n")


def on_branch(repo: WorkRepo, branch: str, files: dict[str, str], *, message: str = "work", base: str = "main") -> str:
    """Create ``branch`` from ``base``, write ``files``, commit and push it; back on main afterwards."""
    repo.git("checkout", "-q", "-B", branch, base)
    for path, content in files.items():
        repo.write(path, content)
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", message)
    sha = repo.head()
    repo.git("push", "-q", "--force", "origin", f"{branch}:{branch}")
    repo.git("checkout", "-q", "main")
    return sha
