"""A demo-like configuration repository whose machines are local directories (and SSH ones), for dry runs."""

from __future__ import annotations

import os
from pathlib import Path

from tests.gitutil import WorkRepo, on_branch

BRANCH = "change/dry-run"
NGINX = "prod/web1/nginx"

NGINX_MANIFEST = """[[file]]
path = "/etc/nginx/nginx.conf"
mode = "0640"

[deploy]
reload = ["nginx -t", "systemctl reload nginx"]
"""
APP_MANIFEST = """[deploy]
reload = ["systemctl restart app"]
"""
BAD_MACHINE = """[machine]
transport = "local"
root = "machines/bad1"
port = "twenty-two"
"""


def build_repo(repo: WorkRepo, *, ssh_port: int | None = None, ssh_host: str = "127.0.0.1",
               ssh_user: str = "nobody", ssh_files: dict[str, str] | None = None) -> str:
    """main: web1 (local), db1 (manual), bad1 (malformed manifest), ssh1 (SSH); a branch that changes
    all of them. Returns the branch name."""
    repo.write("README.md", "# Infrastructure\n")
    repo.write(".cmdb-secrets", "**/secrets/**\n")
    repo.write("prod/README.md", "# Production\n")
    repo.write("prod/web1/README.md", "# web1\n")
    repo.write("prod/web1/manifest.toml", '[machine]\ntransport = "local"\nroot = "machines/web1"\n')
    repo.write(f"{NGINX}/README.md", "# nginx\n")
    repo.write(f"{NGINX}/manifest.toml", NGINX_MANIFEST)
    repo.write(f"{NGINX}/files/etc/nginx/nginx.conf", "worker_processes 2;\n")
    repo.write(f"{NGINX}/files/etc/nginx/old.conf", "# legacy\n")
    repo.write(f"{NGINX}/files/etc/nginx/same.conf", "same\n")
    repo.write("prod/web1/app/manifest.toml", APP_MANIFEST)
    repo.write("prod/web1/app/files/etc/app/app.conf", "debug = false\n")
    repo.write("prod/web1/app/files/etc/app/secrets/token", "old-token-value\n")
    repo.write("prod/db1/README.md", "# db1\n")
    repo.write("prod/db1/manifest.toml", '[machine]\ntransport = "manual"\n')
    repo.write("prod/db1/pg/files/etc/postgresql/postgresql.conf", "shared_buffers = 1GB\n")
    repo.write("prod/bad1/manifest.toml", '[machine]\ntransport = "local"\nroot = "machines/bad1"\n')
    repo.write("prod/bad1/app/files/etc/bad.conf", "x\n")
    if ssh_port is not None:
        repo.write("prod/ssh1/manifest.toml",
                   f'[machine]\ntransport = "ssh"\nhost = "{ssh_host}"\nport = {ssh_port}\nuser = "{ssh_user}"\n')
        for path, content in (ssh_files or {"/etc/ssh1.conf": "a\n"}).items():
            repo.write(f"prod/ssh1/app/files{path}", content)
    repo.commit("Initial layout")
    repo.git("rm", "-q", f"{NGINX}/files/etc/nginx/old.conf")
    changes = {
        f"{NGINX}/files/etc/nginx/nginx.conf": "worker_processes 4;\n",
        f"{NGINX}/files/etc/nginx/new.conf": "server { listen 8080; }\n",
        "prod/web1/app/files/etc/app/secrets/token": "new-token-value\n",
        "prod/db1/pg/files/etc/postgresql/postgresql.conf": "shared_buffers = 2GB\n",
        "prod/bad1/manifest.toml": BAD_MACHINE,
    }
    if ssh_port is not None:
        for path, content in (ssh_files or {"/etc/ssh1.conf": "a\n"}).items():
            changes[f"prod/ssh1/app/files{path}"] = content + "changed\n"
    on_branch(repo, BRANCH, changes, message="Tune nginx")
    return BRANCH


def build_machines(base: Path) -> Path:
    """The live tree of web1 under ``base/machines/web1``: drift everywhere. Returns the root."""
    root = base / "machines" / "web1"
    files = {
        "etc/nginx/nginx.conf": (b"worker_processes 1;\n", 0o644),
        "etc/nginx/old.conf": (b"# legacy\n", 0o644),
        "etc/nginx/same.conf": (b"same\n", 0o644),
        "etc/app/app.conf": (b"debug = false\n", 0o600),
        "etc/app/secrets/token": (b"live-token-value\n", 0o600),
    }
    for rel, (data, mode) in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
    os.symlink("nginx.conf", root / "etc/nginx/link.conf")
    (base / "machines" / "bad1").mkdir(parents=True)
    return root


def snapshot_tree(root: Path) -> list[tuple]:
    """Every path under ``root`` with its mode, mtime and bytes (symlinks: their target)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            st = path.lstat()
            if path.is_symlink():
                data = os.readlink(path).encode()
            elif path.is_file():
                data = path.read_bytes()
            else:
                data = b""
            out.append((str(path.relative_to(root)), st.st_mode, st.st_mtime_ns, st.st_uid, st.st_gid, data))
    return sorted(out)
