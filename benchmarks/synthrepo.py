#!/usr/bin/env python3
"""Generate large synthetic configuration repositories for benchmarks.

Usage::

    python benchmarks/synthrepo.py OUTDIR [--envs 5] [--machines 1000] [--apps 4] [--files 5]
                                          [--commits N] [--seed 42] [--force]

creates ``OUTDIR/origin.git``, a bare repository whose branch ``main`` follows the portal's layout
``<environment>/<machine>/<application>/``:

* ``--envs`` environments, each with ``--machines`` machines, each with ``--apps`` applications,
  each with ``--files`` files under ``files/`` (mostly ``files/etc/...``, a few hundred bytes to a
  few KB each; shell scripts are committed executable);
* a README.md at every level — root, environments, machines, applications, and every ``_common/``
  (one at the top, one per environment with a couple of shared files including a secret, and one
  on every fifth machine) — each a few hundred bytes of Markdown with a heading, a list, a relative
  link to the parent README and sometimes a fenced code block;
* a ``manifest.toml`` per machine (transport) and on every other application (modes, reload);
* a top-level ``.cmdb-secrets``.

The defaults give 5,000 machines, 20,000 applications, 100,000 application files and about 26,000
READMEs. Everything is written with ONE ``git fast-import`` stream (one commit, plus ``--commits N``
small follow-up commits by several authors), so no process is started per file.

Importable by other benchmark scripts::

    from benchmarks.synthrepo import generate, add_commit
    bare = generate(tmp, envs=2, machines=50, apps=3, files=4, commits=5)
    add_commit(bare, "production/web0001/nginx/files/etc/nginx/nginx.conf", "worker_processes 8;\\n", "tune")

Standard library only (Python 3.11) plus the ``git`` command line.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

BRANCH = "main"
BASE_TIME = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
README = "README.md"


class SynthError(Exception):
    """A failure with a message fit for the user."""


# --------------------------------------------------------------------------------------------------
# Git plumbing
# --------------------------------------------------------------------------------------------------

_SCRUBBED_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_NAMESPACE")


def _git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """An environment that ignores global/system Git config and any repository we were started in."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env.update(
        {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
            "GIT_AUTHOR_NAME": "Synth Bot",
            "GIT_AUTHOR_EMAIL": "synth-bot@example.com",
            "GIT_COMMITTER_NAME": "Synth Bot",
            "GIT_COMMITTER_EMAIL": "synth-bot@example.com",
        }
    )
    if extra:
        env.update(extra)
    return env


def _git(repo: Path, *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> str:
    proc = subprocess.run(
        ["git", "--git-dir", str(repo), *args], env=_git_env(env), input=stdin, capture_output=True
    )
    if proc.returncode != 0:
        message = proc.stderr.decode("utf-8", "replace").strip()
        raise SynthError(f"`git {' '.join(args)}` failed in {repo}: {message}")
    return proc.stdout.decode("utf-8", "replace")


def add_commit(
    bare_repo: str | os.PathLike[str],
    path: str,
    content: str | bytes,
    message: str,
    *,
    branch: str = BRANCH,
    executable: bool = False,
    author: tuple[str, str] = ("Synth Bot", "synth-bot@example.com"),
    date: str | None = None,
) -> str:
    """Commit one file (added or replaced) on top of ``branch`` of a bare repository; return the commit id.

    Works without a work tree: the blob is written with ``hash-object -w``, the branch's tree is read
    into a temporary index (``GIT_INDEX_FILE``), updated, written with ``write-tree``, committed with
    ``commit-tree`` and the branch is moved with ``update-ref`` (checked against the old value, so a
    concurrent push makes this fail instead of losing commits). ``date`` is anything Git accepts
    (e.g. ``2026-11-20T10:00:00+01:00``); the default is now.
    """
    repo = Path(bare_repo)
    data = content.encode("utf-8") if isinstance(content, str) else content
    path = path.strip("/")
    if not path or any(part in ("", ".", "..", ".git") for part in path.split("/")):
        raise SynthError(f"not a valid repository path: {path!r}")
    ref = f"refs/heads/{branch}"
    parent = _resolve(repo, ref)
    blob = _git(repo, "hash-object", "-w", "--stdin", stdin=data).strip()
    with tempfile.TemporaryDirectory(prefix="synthrepo-index-") as tmp:
        index_env = {"GIT_INDEX_FILE": str(Path(tmp, "index"))}
        if parent:
            _git(repo, "read-tree", parent, env=index_env)
        mode = "100755" if executable else "100644"
        _git(repo, "update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}", env=index_env)
        tree = _git(repo, "write-tree", env=index_env).strip()
    ident = {
        "GIT_AUTHOR_NAME": author[0],
        "GIT_AUTHOR_EMAIL": author[1],
        "GIT_COMMITTER_NAME": author[0],
        "GIT_COMMITTER_EMAIL": author[1],
    }
    if date:
        ident |= {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    parent_args = ["-p", parent] if parent else []
    commit = _git(repo, "commit-tree", tree, *parent_args, stdin=message.encode("utf-8"), env=ident).strip()
    _git(
        repo,
        "update-ref",
        "-m",
        f"synthrepo: {message.splitlines()[0] if message else 'commit'}",
        ref,
        commit,
        parent or "0" * 40,
    )
    return commit


def _resolve(repo: Path, ref: str) -> str:
    """The commit id ``ref`` points to, or "" when it does not exist yet (an empty repository)."""
    if not (repo / "HEAD").is_file():
        raise SynthError(f"{repo} is not a bare Git repository")
    proc = subprocess.run(
        ["git", "--git-dir", str(repo), "rev-parse", "-q", "--verify", f"{ref}^{{commit}}"],
        env=_git_env(),
        capture_output=True,
        text=True,
    )
    return proc.stdout.strip() if proc.returncode == 0 else ""


# --------------------------------------------------------------------------------------------------
# Content
# --------------------------------------------------------------------------------------------------

ENV_NAMES = ["production", "staging", "test", "internal", "dev", "qa", "dr", "lab"]
ROLES: dict[str, list[str]] = {
    "web": ["nginx", "app", "node-exporter", "logrotate", "filebeat", "certbot"],
    "db": ["postgresql", "pgbouncer", "backup", "node-exporter", "logrotate"],
    "cache": ["redis", "sentinel", "node-exporter", "logrotate"],
    "mq": ["rabbitmq", "node-exporter", "logrotate", "filebeat"],
    "lb": ["haproxy", "keepalived", "node-exporter", "rsyslog"],
    "mon": ["prometheus", "alertmanager", "grafana", "node-exporter"],
    "build": ["jenkins", "docker", "gitlab-runner", "node-exporter"],
    "app": ["app", "worker", "celery-beat", "node-exporter", "logrotate"],
}
EXTRA_APPS = ["chrony", "rsyslog", "auditd", "fail2ban", "postfix", "sssd", "telegraf", "vector"]
PURPOSES = {
    "web": "serves the public web shop behind the load balancers",
    "db": "holds the order and customer databases",
    "cache": "keeps sessions and page fragments in memory",
    "mq": "carries jobs between the shop and the workers",
    "lb": "balances HTTPS traffic across the web servers",
    "mon": "collects metrics and sends alerts to the on-call rota",
    "build": "builds and deploys releases",
    "app": "runs background workers for orders, mails and exports",
}
PEOPLE = [
    ("Alice Lindqvist", "alice.lindqvist@example.com"),
    ("Bogdan Petrov", "bogdan.petrov@example.com"),
    ("Chiara Rossi", "chiara.rossi@example.com"),
    ("Dev Patel", "dev.patel@example.com"),
    ("Emeka Obi", "emeka.obi@example.com"),
    ("Fatima Haddad", "fatima.haddad@example.com"),
]

_WORDS = (
    "cache buffer timeout worker pool queue limit retry backoff socket listen bind address port "
    "user group mode path log level format rotate keep compress interval threshold replica shard "
    "primary secondary upstream backend frontend proxy header cookie session token ttl size max min "
    "enable disable allow deny zone region cluster node peer weight health check probe metrics"
).split()


def _kv_pool(rng: random.Random, fmt: str, n: int = 400) -> list[str]:
    """Pre-rendered config lines in one syntax; files draw from these, so generation stays cheap."""
    out = []
    for _ in range(n):
        key = "_".join(rng.sample(_WORDS, rng.choice((1, 2, 2, 3))))
        value: str | int
        r = rng.random()
        if r < 0.4:
            value = rng.choice((1, 2, 4, 8, 16, 30, 60, 64, 100, 128, 256, 300, 512, 1024, 4096, 65536))
        elif r < 0.7:
            value = rng.choice(("on", "off", "yes", "no", "true", "false", "auto"))
        else:
            value = "/" + "/".join(rng.sample(_WORDS, rng.choice((2, 3))))
        if rng.random() < 0.12:
            out.append(
                {"conf": "    # {c}", "ini": "; {c}", "yaml": "# {c}", "sh": "# {c}", "unit": "# {c}"}[
                    fmt
                ].format(c=" ".join(rng.sample(_WORDS, 6)).capitalize() + ".")
            )
        if fmt == "conf":
            out.append(f"    {key} {value};")
        elif fmt == "ini":
            out.append(f"{key} = {value}")
        elif fmt == "yaml":
            out.append(f"  {key}: {value}")
        elif fmt == "unit":
            out.append(f"Environment={key.upper()}={value}")
        else:  # sh
            out.append(f'{key.upper()}="{value}"' if rng.random() < 0.5 else f'log "{key} {value}"')
    return out


@dataclass
class Content:
    """Deterministic generators for file and README text."""

    rng: random.Random
    pools: dict[str, list[str]] = field(init=False)
    line_len: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        self.pools = {fmt: _kv_pool(self.rng, fmt) for fmt in ("conf", "ini", "yaml", "sh", "unit")}
        self.line_len = {fmt: 1 + sum(map(len, pool)) / len(pool) for fmt, pool in self.pools.items()}

    def size(self) -> int:
        # a few hundred bytes to a few KB, skewed small
        return self.rng.choice((250, 350, 450, 600, 750, 900, 1100, 1400, 1900, 2800, 4200))

    def _body(self, fmt: str, target: int) -> str:
        lines = self.rng.choices(self.pools[fmt], k=max(4, int(target / self.line_len[fmt])))
        return "\n".join(lines)

    def app_file(self, repo_path: str, fmt: str, app: str) -> str:
        target = self.size()
        header = f"Managed by the CMDB: {repo_path}"
        if fmt == "conf":
            return f"# {header}\n{app} {{\n{self._body('conf', target)}\n}}\n"
        if fmt == "ini":
            return f"; {header}\n[{app}]\n{self._body('ini', target // 2)}\n\n[tuning]\n{self._body('ini', target // 2)}\n"
        if fmt == "yaml":
            return f"# {header}\n{app.replace('-', '_')}:\n{self._body('yaml', target)}\n"
        if fmt == "unit":
            return (
                f"# {header}\n[Unit]\nDescription={app} service\nAfter=network-online.target\n\n[Service]\n"
                f"ExecStart=/usr/bin/{app} --config /etc/{app}/{app}.conf\nRestart=on-failure\n"
                f"{self._body('unit', target // 2)}\n\n[Install]\nWantedBy=multi-user.target\n"
            )
        return (
            f'#!/bin/sh\n# {header}\nset -eu\nlog() {{ logger -t {app} "$*"; }}\n'
            f"{self._body('sh', target)}\nlog done\n"
        )

    def code_block(self) -> str:
        cmd = self.rng.choice(
            (
                "systemctl daemon-reload\nsystemctl restart {x}",
                "apt-get install -y {x}\nsystemctl enable --now {x}",
                "install -m 0644 files/etc/{x}/{x}.conf /etc/{x}/\n{x} --check-config",
                "journalctl -u {x} --since today | tail -n 50",
            )
        )
        return "```sh\n" + cmd + "\n```\n"

    def readme(
        self,
        title: str,
        intro: str,
        items: list[str],
        steps: list[str],
        parent: str | None,
        code_for: str | None = None,
    ) -> str:
        parts = [f"# {title}\n\n{intro}\n"]
        if items:
            parts.append("\n## Contents\n\n" + "".join(f"- {i}\n" for i in items))
        if steps:
            parts.append("\n## Reproduce\n\n" + "".join(f"{n}. {s}\n" for n, s in enumerate(steps, 1)))
        if code_for and self.rng.random() < 0.4:
            parts.append("\n" + self.code_block().replace("{x}", code_for))
        if parent:
            parts.append(f"\nBack to [{parent}](../{README}).\n")
        return "".join(parts)


# --------------------------------------------------------------------------------------------------
# The fast-import stream
# --------------------------------------------------------------------------------------------------


class Stream:
    """Writes fast-import commands to a pipe, buffering to keep syscalls few."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self.pipe = pipe
        self.buf: list[bytes] = []
        self.pending = 0
        self.files = 0
        self.bytes = 0

    def raw(self, data: bytes) -> None:
        self.buf.append(data)
        self.pending += len(data)
        if self.pending > 1 << 20:
            self.flush()

    def flush(self) -> None:
        self.pipe.write(b"".join(self.buf))
        self.buf.clear()
        self.pending = 0

    def data(self, payload: bytes) -> None:
        self.raw(b"data %d\n" % len(payload) + payload + b"\n")

    def file(self, path: str, content: str, executable: bool = False) -> None:
        payload = content.encode("utf-8")
        mode = b"100755" if executable else b"100644"
        self.raw(b"M " + mode + b" inline " + path.encode("utf-8") + b"\n")
        self.data(payload)
        self.files += 1
        self.bytes += len(payload)

    def commit_header(
        self, mark: int, who: tuple[str, str], when: datetime, message: str, parent_mark: int | None
    ) -> None:
        ident = f"{who[0]} <{who[1]}> {int(when.timestamp())} +0000".encode()
        self.raw(
            b"commit refs/heads/%s\nmark :%d\nauthor %s\ncommitter %s\n"
            % (BRANCH.encode(), mark, ident, ident)
        )
        self.data(message.encode("utf-8"))
        if parent_mark is not None:
            self.raw(b"from :%d\n" % parent_mark)


@dataclass
class Stats:
    files: int = 0
    readmes: int = 0
    bytes: int = 0
    machines: int = 0
    applications: int = 0
    commits: int = 0


def env_names(n: int) -> list[str]:
    return [ENV_NAMES[i] if i < len(ENV_NAMES) else f"env{i + 1:02d}" for i in range(n)]


def _apps_for(role: str, n: int, rng: random.Random) -> list[str]:
    choices = list(ROLES[role])
    apps = choices[: min(n, len(choices))]
    pool = [a for a in EXTRA_APPS if a not in apps]
    rng.shuffle(pool)
    while len(apps) < n:
        apps.append(pool.pop() if pool else f"service{len(apps) + 1:02d}")
    return apps


def _app_file_paths(app: str, n: int, rng: random.Random) -> Iterator[tuple[str, str, bool]]:
    """(path under files/, format, executable) for n files of an application; mostly /etc."""
    candidates = [
        (f"etc/{app}/{app}.conf", "conf", False),
        (f"etc/systemd/system/{app}.service", "unit", False),
        (f"etc/{app}/conf.d/10-tuning.conf", "conf", False),
        (f"etc/{app}/{app}.yaml", "yaml", False),
        (f"usr/local/bin/{app}-healthcheck.sh", "sh", True),
        (f"etc/default/{app}", "ini", False),
        (f"etc/{app}/conf.d/20-logging.conf", "conf", False),
        (f"etc/logrotate.d/{app}", "conf", False),
        (f"opt/{app}/settings.ini", "ini", False),
        (f"etc/cron.d/{app}", "sh", False),
    ]
    for i in range(n):
        if i < len(candidates):
            yield candidates[i]
        else:
            yield (f"etc/{app}/conf.d/{i:02d}-{rng.choice(_WORDS)}.conf", "conf", False)


def _write_tree(
    out: Stream,
    envs: int,
    machines: int,
    apps: int,
    files: int,
    rng: random.Random,
    content: Content,
    stats: Stats,
    stash_machines: set[tuple[int, int]],
    stash: list[tuple[str, str]],
) -> None:
    names = env_names(envs)
    out.file(
        ".cmdb-secrets",
        "# Secret files (one glob per line)\n*/_common/tls/privkey.pem\n**/*.key\n**/secrets/**\n",
    )
    env_rows = "".join(
        f"| [{e}]({e}/{README}) | {machines} machines | {rng.choice(('Ops', 'Platform', 'SRE'))} team |\n"
        for e in names
    )
    out.file(
        README,
        "# Configuration repository (synthetic)\n\nGenerated for benchmarks; layout "
        "`<environment>/<machine>/<application>/`.\n\n## Environments\n\n| Environment | Size | Owner |\n"
        f"|---|---|---|\n{env_rows}\nShared by all environments: [base installation](_common/{README}).\n",
    )
    out.file(
        f"_common/{README}",
        content.readme(
            "Base installation (all environments)",
            "Steps every machine starts with.",
            ["`users/admins.yaml` — admin accounts"],
            ["Install Debian 12 (netinst, SSH only).", "Create the admin accounts.", "Harden SSH."],
            "the repository overview",
            code_for="unattended-upgrades",
        ),
    )
    out.file(
        "_common/users/admins.yaml",
        "admins:\n" + "".join(f"  - login: {p[0].split()[0].lower()}\n" for p in PEOPLE),
    )
    stats.readmes += 2
    role_names = list(ROLES)
    for ei, env in enumerate(names):
        env_machines = []
        for mi in range(machines):
            role = role_names[(mi * 7 + ei) % len(role_names)]
            env_machines.append((mi, f"{role}{mi + 1:04d}", role))
        listing = [f"[{m}]({m}/{README}) — {PURPOSES[r]}" for _, m, r in env_machines[:20]]
        if machines > 20:
            listing.append(f"… and {machines - 20} more machines")
        out.file(
            f"{env}/{README}",
            content.readme(
                f"{env} environment",
                f"All machines of {env}. Changes need an approved change request.",
                listing,
                [],
                "all environments",
            ),
        )
        out.file(
            f"{env}/_common/{README}",
            content.readme(
                f"{env} — shared steps",
                f"Artifacts shared by all {env} machines.",
                ["`tls/ca-bundle.pem` — internal CA", "`tls/privkey.pem` — wildcard key (secret)"],
                [
                    "Install the CA bundle to `/usr/local/share/ca-certificates/`.",
                    "Run `update-ca-certificates`.",
                ],
                env,
            ),
        )
        cert_body = "".join(
            "".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", k=64))
            + "\n"
            for _ in range(12)
        )
        out.file(
            f"{env}/_common/tls/ca-bundle.pem",
            f"-----BEGIN CERTIFICATE-----\n{cert_body}-----END CERTIFICATE-----\n",
        )
        out.file(
            f"{env}/_common/tls/privkey.pem",
            f"-----BEGIN PRIVATE KEY-----\n{cert_body[:390]}-----END PRIVATE KEY-----\n",
        )
        stats.readmes += 2
        for mi, machine, role in env_machines:
            mdir = f"{env}/{machine}"
            app_names = _apps_for(role, apps, rng)
            has_common = mi % 5 == 4
            host = f"{machine}.{env}.example.net"
            steps = [f"Follow the [base installation](../../_common/{README}) with hostname `{machine}`."]
            if has_common:
                steps.append(f"Apply the [shared steps](_common/{README}) of this machine.")
            steps += [f"Install and configure [{a}]({a}/{README})." for a in app_names]
            out.file(
                f"{mdir}/{README}",
                content.readme(
                    f"{machine} — {role} server in {env}",
                    f"**Purpose:** {PURPOSES[role]}. Host `{host}`.",
                    [f"[{a}]({a}/{README})" for a in app_names],
                    steps,
                    env,
                    code_for=app_names[0],
                ),
            )
            transport = "manual" if mi % 50 == 49 else "ssh"
            out.file(f"{mdir}/manifest.toml", f'[machine]\ntransport = "{transport}"\nhost = "{host}"\n')
            stats.readmes += 1
            stats.machines += 1
            if has_common:
                out.file(
                    f"{mdir}/_common/{README}",
                    content.readme(
                        f"{machine} — shared by its applications",
                        "Log rotation for all applications.",
                        ["`logrotate/apps` — rotation rules"],
                        ["Copy to `/etc/logrotate.d/apps`."],
                        machine,
                    ),
                )
                out.file(
                    f"{mdir}/_common/logrotate/apps",
                    f"/var/log/{machine}/*.log {{\n    daily\n    rotate 14\n    compress\n}}\n",
                )
                stats.readmes += 1
            for ai, app in enumerate(app_names):
                adir = f"{mdir}/{app}"
                paths = list(_app_file_paths(app, files, rng))
                out.file(
                    f"{adir}/{README}",
                    content.readme(
                        f"{app} on {machine}",
                        f"Configuration of {app}; files under `files/` mirror `/`.",
                        [f"`/{p}`" for p, _, _ in paths[:6]],
                        [
                            f"Install the package: `apt-get install -y {app}`.",
                            "Copy the files from `files/` to `/`.",
                            f"Reload: `systemctl reload-or-restart {app}`.",
                        ],
                        machine,
                        code_for=app,
                    ),
                )
                stats.readmes += 1
                stats.applications += 1
                if ai % 2 == 0:
                    entries = "".join(
                        f'[[file]]\npath = "/{p}"\nmode = "{"0755" if x else "0644"}"\n\n'
                        for p, _, x in paths[:3]
                    )
                    out.file(
                        f"{adir}/manifest.toml",
                        entries + f'[deploy]\nreload = ["systemctl reload-or-restart {app}"]\n',
                    )
                for fi, (rel, fmt, executable) in enumerate(paths):
                    repo_path = f"{adir}/files/{rel}"
                    text = content.app_file(repo_path, fmt, app)
                    out.file(repo_path, text, executable)
                    if fi == 0 and ai == 0 and (ei, mi) in stash_machines:
                        stash.append((repo_path, text))


def _prepare(outdir: Path, force: bool) -> Path:
    bare = outdir / "origin.git"
    if bare.exists():
        if not force:
            raise SynthError(f"{bare} already exists; use --force to replace it")
        shutil.rmtree(bare)
    outdir.mkdir(parents=True, exist_ok=True)
    return bare


def generate(
    outdir: str | os.PathLike[str],
    envs: int = 5,
    machines: int = 1000,
    apps: int = 4,
    files: int = 5,
    commits: int = 0,
    *,
    seed: int = 42,
    force: bool = False,
) -> Path:
    """Create ``outdir/origin.git`` (bare) with a synthetic repository on ``main``; return its path.

    ``machines`` is per environment, ``apps`` per machine, ``files`` per application. ``commits``
    adds that many small one-file commits on top, by rotating authors, an hour apart. The same
    arguments and ``seed`` always give the same commits.
    """
    return generate_with_stats(outdir, envs, machines, apps, files, commits, seed=seed, force=force)[0]


def generate_with_stats(
    outdir: str | os.PathLike[str],
    envs: int,
    machines: int,
    apps: int,
    files: int,
    commits: int = 0,
    *,
    seed: int = 42,
    force: bool = False,
) -> tuple[Path, Stats]:
    """Like :func:`generate`, but also return counts of what was written."""
    for name, value, low in (
        ("envs", envs, 1),
        ("machines", machines, 1),
        ("apps", apps, 1),
        ("files", files, 1),
        ("commits", commits, 0),
    ):
        if value < low:
            raise SynthError(f"--{name} must be at least {low} (got {value})")
    if shutil.which("git") is None:
        raise SynthError("the `git` command is not installed or not on PATH")
    bare = _prepare(Path(outdir), force)
    _git_init(bare)

    rng = random.Random(seed)
    content = Content(random.Random(seed + 1))
    stats = Stats()
    total_machines = envs * machines
    targets = rng.sample(range(total_machines), min(commits, total_machines)) if commits else []
    stash_machines = {(t // machines, t % machines) for t in targets}
    stash: list[tuple[str, str]] = []

    proc = subprocess.Popen(
        # pack.compression=1 and --depth=0 (no delta attempts against the previous blob) roughly
        # halve fast-import's CPU time here; the pack is ~4 % larger. A later `git gc` repacks it.
        [
            "git",
            "--git-dir",
            str(bare),
            "-c",
            "pack.compression=1",
            "fast-import",
            "--quiet",
            "--done",
            "--depth=0",
        ],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_git_env(),
        bufsize=1 << 20,
    )
    assert proc.stdin is not None
    out = Stream(proc.stdin)
    try:
        out.commit_header(
            1,
            PEOPLE[0],
            BASE_TIME,
            f"Import {envs} environments, {total_machines} machines, {total_machines * apps} applications\n",
            None,
        )
        _write_tree(out, envs, machines, apps, files, rng, content, stats, stash_machines, stash)
        stats.files, stats.bytes = out.files, out.bytes
        latest: dict[str, str] = {}
        for k in range(commits):
            path, text = stash[k % len(stash)]
            text = latest.get(path, text)
            who = PEOPLE[(k + 1) % len(PEOPLE)]
            text = text.rstrip("\n") + f"\n# change {k + 1}: adjusted by {who[0].split()[0].lower()}\n"
            latest[path] = text
            app = path.split("/")[2]
            out.commit_header(
                k + 2,
                who,
                BASE_TIME + timedelta(hours=k + 1),
                f"{app}: tune {path.rsplit('/', 1)[-1]} (change {k + 1})\n",
                k + 1,
            )
            out.file(path, text)
        out.raw(b"done\n")
        out.flush()
        proc.stdin.close()
    except BrokenPipeError:
        pass  # fast-import died; its message is read below
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
    if proc.wait() != 0:
        raise SynthError(f"git fast-import failed: {err.strip()}")
    stats.commits = 1 + commits
    return bare, stats


def _git_init(bare: Path) -> None:
    proc = subprocess.run(
        ["git", "init", "-q", "--bare", "-b", BRANCH, str(bare)],
        env=_git_env(),
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SynthError(f"`git init --bare` failed: {proc.stderr.strip()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Generate a synthetic configuration repository (bare, branch main) with git fast-import.",
    )
    parser.add_argument("outdir", type=Path, help="directory to create origin.git in")
    parser.add_argument("--envs", type=int, default=5, help="environments (default 5)")
    parser.add_argument("--machines", type=int, default=1000, help="machines per environment (default 1000)")
    parser.add_argument("--apps", type=int, default=4, help="applications per machine (default 4)")
    parser.add_argument("--files", type=int, default=5, help="files per application under files/ (default 5)")
    parser.add_argument(
        "--commits", type=int, default=0, help="small one-file commits to add on top (default 0)"
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--force", action="store_true", help="replace OUTDIR/origin.git if it exists")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    try:
        bare, stats = generate_with_stats(
            args.outdir,
            args.envs,
            args.machines,
            args.apps,
            args.files,
            args.commits,
            seed=args.seed,
            force=args.force,
        )
    except SynthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - started
    print(f"{bare}: {stats.commits} commit(s) on {BRANCH}")
    print(
        f"  {stats.files:,} files ({stats.bytes / 1e6:.1f} MB), {stats.readmes:,} READMEs, "
        f"{stats.machines:,} machines, {stats.applications:,} applications"
    )
    print(f"  generated in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
