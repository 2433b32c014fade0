#!/usr/bin/env python3
"""Build the demo configuration repository for the portal.

Usage::

    python demo/build_demo_repo.py OUTDIR [--force]

Creates, using nothing but the Python 3.11 standard library and the ``git`` command line:

``OUTDIR/origin.git``
    A bare repository (the "origin" the portal indexes), default branch ``main``.
``OUTDIR/work``
    A clone of it, left checked out on ``main``.
``OUTDIR/live/<environment>/<machine>/``
    One directory per machine whose ``manifest.toml`` says ``transport = "local"``; it stands for
    that machine's ``/`` and holds the files ``main`` declares for it, with deliberate drift.

The repository follows the layout ``<environment>/<machine>/<application>/`` with READMEs at every
level, ``_common/`` folders, ``manifest.toml`` files and a top-level ``.cmdb-secrets``.  ``main`` is
built as ten commits by five authors (dates in autumn 2026); the annotated tag ``baseline-2026-10``
marks an earlier commit, and three ``change/...`` branches (one by a sixth author) make example
change requests.

Deliberate findings for the portal to report:

* drift (``live/``): ``production/web1`` ``/etc/nginx/nginx.conf`` has one changed line;
  ``/etc/systemd/system/shopfront.service`` is 0600 on the machine but declared 0644;
  ``production/db1`` is missing the declared ``/etc/cron.d/pg-backup``;
* lint: ``test/db-test1/backup/`` has no README; ``files/etc/nginx/snippets/proxy-params.conf`` is
  byte-identical in ``production/web1/nginx`` and ``test/web-test1/nginx``.

The script refuses (exit status 2) to touch an OUTDIR that already holds a demo unless ``--force``
is given, in which case OUTDIR is deleted first.  It never reads the user's global or system Git
configuration, so it works the same on a fresh machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import tomllib
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

DEMO_PARTS = ("origin.git", "work", "live")
BRANCH = "main"
TAG = "baseline-2026-10"


class DemoError(Exception):
    """A failure with a message fit for the user; the script exits with status 1."""


class RefusedError(Exception):
    """OUTDIR cannot be used as asked; the script exits with status 2."""


class Exe(str):
    """File content that is committed as an executable (mode 100755)."""


def md(text: str) -> str:
    """Dedent a triple-quoted block and drop the leading newline."""
    return textwrap.dedent(text).lstrip("\n")


def replace_once(text: str, old: str, new: str) -> str:
    """``text`` with ``old`` replaced by ``new``; ``old`` must occur exactly once."""
    count = text.count(old)
    if count != 1:
        raise DemoError(f"internal error: expected one occurrence of {old!r}, found {count}")
    return text.replace(old, new)


# --------------------------------------------------------------------------------------------------
# People and Git plumbing
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    name: str
    email: str


ALICE = Person("Alice Lindqvist", "alice.lindqvist@example.com")  # ops lead
BOGDAN = Person("Bogdan Petrov", "bogdan.petrov@example.com")  # DBA
CHIARA = Person("Chiara Rossi", "chiara.rossi@example.com")  # network
DEV = Person("Dev Patel", "dev.patel@example.com")  # application developer
EMEKA = Person("Emeka Obi", "emeka.obi@example.com")  # build engineer
FATIMA = Person("Fatima Haddad", "fatima.haddad@example.com")  # SRE / monitoring

_SCRUBBED_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_NAMESPACE")


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """An environment for ``git`` that ignores global/system config and any inherited repository."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env.update(
        {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
            # A fallback identity so no step depends on user.name/user.email being configured.
            "GIT_AUTHOR_NAME": "Demo Builder",
            "GIT_AUTHOR_EMAIL": "demo-builder@example.com",
            "GIT_COMMITTER_NAME": "Demo Builder",
            "GIT_COMMITTER_EMAIL": "demo-builder@example.com",
        }
    )
    if extra:
        env.update(extra)
    return env


def git(cwd: Path, *args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> str:
    """Run ``git -C cwd args...`` and return its stdout; raise DemoError with git's message on failure."""
    cmd = ["git", "-c", "core.autocrlf=false", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false", *args]
    proc = subprocess.run(cmd, cwd=cwd, env=git_env(env), input=stdin, capture_output=True, text=True)
    if proc.returncode != 0:
        raise DemoError(
            f"`git {' '.join(args)}` failed in {cwd}:\n{proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc.stdout


def identity(who: Person, date: str) -> dict[str, str]:
    return {
        "GIT_AUTHOR_NAME": who.name,
        "GIT_AUTHOR_EMAIL": who.email,
        "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_NAME": who.name,
        "GIT_COMMITTER_EMAIL": who.email,
        "GIT_COMMITTER_DATE": date,
    }


Files = dict[str, str | None]  # repository path -> content (Exe for executables) or None to delete


def commit(work: Path, who: Person, date: str, message: str, files: Files) -> str:
    """Write ``files`` into the work tree, stage everything and commit; return the new commit id."""
    for path, content in files.items():
        target = work / path
        if content is None:
            target.unlink()
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8", newline="\n")
        target.chmod(0o755 if isinstance(content, Exe) else 0o644)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-F", "-", env=identity(who, date), stdin=message)
    return git(work, "rev-parse", "HEAD").strip()


# --------------------------------------------------------------------------------------------------
# TLS material (generated fresh on every run)
# --------------------------------------------------------------------------------------------------

# Used only when openssl is unavailable: a public, self-signed certificate for shop.example.com.
# (Public certificates are not secret; its private key was never kept.)
FALLBACK_CERT = md(
    """
    -----BEGIN CERTIFICATE-----
    MIIB7TCCAZSgAwIBAgIUI734zheulLv5RH0IqvZVVIjbFVswCgYIKoZIzj0EAwIw
    MjEVMBMGA1UECgwMRXhhbXBsZSBDb3JwMRkwFwYDVQQDDBBzaG9wLmV4YW1wbGUu
    Y29tMB4XDTI2MTEyMjAxMDc0MloXDTI3MTIyNDAxMDc0MlowMjEVMBMGA1UECgwM
    RXhhbXBsZSBDb3JwMRkwFwYDVQQDDBBzaG9wLmV4YW1wbGUuY29tMFkwEwYHKoZI
    zj0CAQYIKoZIzj0DAQcDQgAE8F5CSMAtLmVEYb36KJf8ELMm2OkJLWrMHDClyN8x
    p/MDsdoMrE7UUecCl+y9IR/sctfTtnlqjek4ZQGHL31t1qOBhzCBhDAdBgNVHQ4E
    FgQUS0yBQBs77xiTYcij+VbCy01agrYwHwYDVR0jBBgwFoAUS0yBQBs77xiTYcij
    +VbCy01agrYwDwYDVR0TAQH/BAUwAwEB/zAxBgNVHREEKjAoghBzaG9wLmV4YW1w
    bGUuY29tghR3d3cuc2hvcC5leGFtcGxlLmNvbTAKBggqhkjOPQQDAgNHADBEAiBC
    t3ChLtDYCG+3Kkm/I/wkUkkUlZBXox9tTKTSkKOuWAIgNcVdaHwzTC5/wx3Jco4n
    kdFGCojFhOQONXcb2arShhc=
    -----END CERTIFICATE-----
    """
)


def make_tls_material() -> tuple[str, str, str]:
    """Return (private key PEM, certificate PEM, tool used). Prefers openssl, falls back to ssh-keygen."""
    with tempfile.TemporaryDirectory(prefix="cmdb-demo-tls-") as tmp:
        key, cert = Path(tmp, "privkey.pem"), Path(tmp, "cert.pem")
        if shutil.which("openssl"):
            proc = subprocess.run(
                [
                    "openssl",
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-keyout",
                    str(key),
                    "-out",
                    str(cert),
                    "-days",
                    "397",
                    "-subj",
                    "/O=Example Corp/CN=shop.example.com",
                    "-addext",
                    "subjectAltName=DNS:shop.example.com,DNS:www.shop.example.com",
                ],
                capture_output=True,
                text=True,
            )
            if proc.returncode == 0 and key.exists() and cert.exists():
                return key.read_text(), cert.read_text(), "openssl"
        if shutil.which("ssh-keygen"):
            key.unlink(missing_ok=True)
            proc = subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "shop.example.com", "-f", str(key)],
                capture_output=True,
                text=True,
            )
            if proc.returncode == 0:
                return key.read_text(), FALLBACK_CERT, "ssh-keygen"
    raise DemoError("cannot generate a demo private key: neither `openssl` nor `ssh-keygen` is installed")


# --------------------------------------------------------------------------------------------------
# Topology pictures (hand-written SVG: boxes, lines and names)
# --------------------------------------------------------------------------------------------------

BOX_W, BOX_H = 180, 56


@dataclass(frozen=True)
class Node:
    label: str
    detail: str
    x: int  # centre
    y: int
    kind: str = "local"  # "local", "manual", "network", "external", "foreign" (another environment)


_FILLS = {
    "local": "#e8f1fb",
    "manual": "#fff4dd",
    "network": "#eeeeee",
    "external": "#eeeeee",
    "foreign": "#f3f3f3",
}
_STROKES = {
    "local": "#2b6cb0",
    "manual": "#b7791f",
    "network": "#666666",
    "external": "#666666",
    "foreign": "#999999",
}


def topology_svg(
    title: str, nodes: dict[str, Node], links: list[tuple[str, str, str]], width: int = 640, height: int = 420
) -> str:
    """An SVG picture: a title, one rounded box per node and a labelled line per link (drawn first)."""
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif">',
        f"  <title>{escape(title)}</title>",
        f'  <rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        f'  <text x="16" y="28" font-size="16" font-weight="bold" fill="#222222">{escape(title)}</text>',
        '  <g stroke-width="2">',
    ]
    for a, b, label in links:
        na, nb = nodes[a], nodes[b]
        dashed = nodes[a].kind in ("external", "foreign") or nodes[b].kind in ("external", "foreign")
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        out.append(f'    <line x1="{na.x}" y1="{na.y}" x2="{nb.x}" y2="{nb.y}" stroke="#555555"{dash}/>')
        if label:
            mx, my = (na.x + nb.x) // 2, (na.y + nb.y) // 2
            if abs(na.x - nb.x) > abs(na.y - nb.y):  # mostly horizontal: label above the line
                x, y, anchor = mx, my - 7, "middle"
            else:
                x, y, anchor = mx + 8, my + 4, "start"
            out.append(
                f'    <text x="{x}" y="{y}" font-size="11" fill="#555555" text-anchor="{anchor}" '
                f'stroke="none">{escape(label)}</text>'
            )
    out.append("  </g>")
    for node in nodes.values():
        left, top = node.x - BOX_W // 2, node.y - BOX_H // 2
        rx = 26 if node.kind in ("network", "external") else 6
        out += [
            f'  <g id="{escape(node.label)}">',
            f'    <rect x="{left}" y="{top}" width="{BOX_W}" height="{BOX_H}" rx="{rx}" '
            f'fill="{_FILLS[node.kind]}" stroke="{_STROKES[node.kind]}" stroke-width="2"/>',
            f'    <text x="{node.x}" y="{node.y - 4}" font-size="15" font-weight="bold" '
            f'text-anchor="middle" fill="#1a202c">{escape(node.label)}</text>',
            f'    <text x="{node.x}" y="{node.y + 15}" font-size="11" text-anchor="middle" '
            f'fill="#4a5568">{escape(node.detail)}</text>',
            "  </g>",
        ]
    legend_y = height - 16
    out += [
        f'  <text x="16" y="{legend_y}" font-size="11" fill="#4a5568">blue: managed from Git (local) · '
        "amber: configured by hand (manual) · dashed: outside this environment</text>",
        "</svg>",
        "",
    ]
    return "\n".join(out)


def production_topology(with_router: bool) -> str:
    nodes = {
        "inet": Node("Internet", "customers, 443/tcp", 320, 80, "external"),
        "web1": Node("web1", "10.10.20.10 · nginx, app", 320, 250),
        "db1": Node("db1", "10.10.20.11 · PostgreSQL 16", 320, 350),
        "build1": Node("build1", "internal · deploys", 540, 250, "foreign"),
    }
    links = [("web1", "db1", "5432/tcp"), ("build1", "web1", "ssh")]
    if with_router:
        nodes["router1"] = Node("router1", "10.10.20.1 · edge, NAT", 320, 165, "manual")
        links = [("inet", "router1", "443/tcp"), ("router1", "web1", "VLAN 20"), *links]
    else:
        links = [("inet", "web1", "443/tcp"), *links]
    return topology_svg("production — network topology", nodes, links)


def test_topology() -> str:
    nodes = {
        "router1": Node("router1", "production edge", 320, 80, "foreign"),
        "webtest": Node("web-test1", "10.10.30.10 · nginx", 320, 180),
        "dbtest": Node("db-test1", "10.10.30.11 · PostgreSQL", 320, 290),
        "build1": Node("build1", "internal · CI", 540, 180, "foreign"),
    }
    links = [
        ("router1", "webtest", "VLAN 30, VPN only"),
        ("webtest", "dbtest", "5432/tcp"),
        ("build1", "webtest", "ssh"),
    ]
    return topology_svg("test — network topology", nodes, links, height=380)


def internal_topology() -> str:
    nodes = {
        "router1": Node("router1", "production edge", 320, 80, "foreign"),
        "switch": Node("office switch", "VLAN 40 · 10.10.40.0/24", 320, 180, "network"),
        "build1": Node("build1", "10.10.40.10 · Jenkins", 180, 290),
        "printer1": Node("printer1", "10.10.40.50 · HP M479", 460, 290, "manual"),
    }
    links = [("router1", "switch", "trunk"), ("switch", "build1", ""), ("switch", "printer1", "")]
    return topology_svg("internal — network topology", nodes, links, height=380)


# --------------------------------------------------------------------------------------------------
# Repository content
# --------------------------------------------------------------------------------------------------

CMDB_SECRETS = md(
    """
    # Secret files: one glob per line (``*`` stays inside a folder, ``**`` crosses folders).
    # The portal masks their content everywhere and never shows them in diffs.
    production/_common/tls/privkey.pem
    **/*.key
    **/secrets/**
    """
)

TOP_README = md(
    """
    # Example Corp — configuration repository

    This repository is the single source of truth for the configuration of every machine the
    operations team runs. It follows the layout `<environment>/<machine>/<application>/`, and every
    level has a README that says what the thing is and how to rebuild it from scratch.

    ## Environments

    | Environment | Purpose | Machines | Change window |
    |---|---|---|---|
    | [production](production/README.md) | Customer-facing web shop `shop.example.com` | router1, web1, db1 | Tue/Thu 07:00–09:00 CET |
    | [test](test/README.md) | Pre-release testing, refreshed weekly from production | web-test1, db-test1 | any time |
    | [internal](internal/README.md) | Build server and office infrastructure | build1, printer1 | announce in #ops |

    Every machine starts from the [base installation](_common/README.md) shared by all environments.

    ## Conventions

    - `_common/` holds artifacts shared by everything one level below it: the top-level one by all
      environments, `production/_common/` by all production machines, `production/web1/_common/` by
      the applications on web1. READMEs refer to shared steps with relative links.
    - Files under an application's `files/` mirror the machine's file system:
      `production/web1/nginx/files/etc/nginx/nginx.conf` is `/etc/nginx/nginx.conf` on web1.
    - An optional `manifest.toml` sets mode, owner and group, maps shared artifacts
      (`source = "../../_common/tls/fullchain.pem"`) and says how to reload the service.
    - Secrets are listed in [`.cmdb-secrets`](.cmdb-secrets); the portal never displays them.

    ## Making a change

    1. Create a branch `change/<what-and-why>` and commit the new configuration there.
    2. Open a change request in the portal; it shows the diff and the affected machines.
    3. After approval the change is merged to `main` and deployed in the change window.
    4. Update the README of everything you touched — the next person rebuilds from it.
    """
)

COMMON_README = md(
    """
    # Base installation (all environments)

    Every Linux machine, whatever its environment, starts with these steps. Machine READMEs link
    here instead of repeating them.

    ## Steps

    1. Install Debian 12 "bookworm" from the netinst image: no desktop, SSH server only,
       hostname as in the environment README, static address from the environment table.
    2. Create the admin accounts listed in [`users/admins.yaml`](users/admins.yaml), each with
       the SSH key from the team vault, and add them to `sudo`.
    3. Harden SSH with [`ssh/sshd_config.d/10-hardening.conf`](ssh/sshd_config.d/10-hardening.conf):
       ```sh
       install -m 0644 ssh/sshd_config.d/10-hardening.conf /etc/ssh/sshd_config.d/
       sshd -t && systemctl reload ssh
       ```
    4. Enable automatic security updates:
       ```sh
       apt-get install -y unattended-upgrades
       dpkg-reconfigure -plow unattended-upgrades
       ```
    5. Set the time zone and NTP: `timedatectl set-timezone Europe/Berlin`.

    ## Artifacts

    - `ssh/sshd_config.d/10-hardening.conf` — no passwords, no root login.
    - `users/admins.yaml` — who has an admin account where.

    Back to [the repository overview](../README.md).
    """
)

SSHD_HARDENING = md(
    """
    # Managed by the CMDB: _common/ssh — shared by all environments.
    PermitRootLogin no
    PasswordAuthentication no
    KbdInteractiveAuthentication no
    PubkeyAuthentication yes
    AllowGroups sudo ssh-users
    X11Forwarding no
    ClientAliveInterval 300
    ClientAliveCountMax 2
    MaxAuthTries 3
    """
)

ADMINS_YAML = md(
    """
    # Admin accounts created by the base installation (see ../README.md).
    # Public keys live in the team vault under ssh/<login>.pub.
    admins:
      - login: alice
        name: Alice Lindqvist
        environments: [production, test, internal]
      - login: bogdan
        name: Bogdan Petrov
        environments: [production, test]
      - login: chiara
        name: Chiara Rossi
        environments: [production, internal]
      - login: emeka
        name: Emeka Obi
        environments: [internal, test]
    groups:
      sudo: [alice, bogdan, chiara, emeka]
      ssh-users: [alice, bogdan, chiara, emeka, deploy]
    """
)


def production_readme(with_router: bool) -> str:
    router_row = (
        "| [router1](router1/README.md) | Edge router and firewall (MikroTik CCR2004) | 10.10.20.1 | manual |\n"
        if with_router
        else ""
    )
    return (
        md(
            """
        # Production

        The customer-facing web shop at <https://shop.example.com>. Every change needs an approved
        change request and is deployed in the window Tue/Thu 07:00–09:00 CET.

        ![Topology](topology.svg)

        ## Machines

        | Machine | Purpose | Address | Transport |
        |---|---|---|---|
        """
        )
        + router_row
        + md(
            """
        | [web1](web1/README.md) | nginx reverse proxy and the shopfront application | 10.10.20.10 | local |
        | [db1](db1/README.md) | PostgreSQL 16 primary for the shop | 10.10.20.11 | local |

        Shared by all production machines: [TLS certificate and production-wide steps](_common/README.md).

        ## Dependencies

        - Customers reach web1 on 443/tcp only; db1 accepts connections from web1 only.
        - build1 in [internal](../internal/README.md) deploys the shopfront release over SSH.

        Back to [all environments](../README.md).
        """
        )
    )


PROD_COMMON_README = md(
    """
    # Production — shared steps

    Artifacts and steps shared by all production machines.

    ## TLS certificate for shop.example.com

    The certificate chain is in [`tls/fullchain.pem`](tls/fullchain.pem), the private key in
    `tls/privkey.pem` (a secret: listed in `.cmdb-secrets`, never shown in the portal).
    Details on renewal are in the [TLS README](tls/README.md).

    1. Copy the chain to `/etc/ssl/certs/shop.example.com.fullchain.pem` (mode 0644).
    2. Copy the key to `/etc/ssl/private/shop.example.com.key` (mode 0600, owner root).
    3. Reload every service that uses it (`systemctl reload nginx` on web1).

    ## Monitoring enrolment

    New production machines are added to the monitoring with their address and role; alerts go
    to the on-call rota.

    Back to [production](../README.md).
    """
)

TLS_README = md(
    """
    # TLS material for shop.example.com

    | File | What | Secret |
    |---|---|---|
    | `fullchain.pem` | server certificate followed by the intermediate | no |
    | `privkey.pem` | private key (P-256) | **yes** |

    ## Renewal

    The certificate is valid for 397 days. Renew it four weeks before expiry:

    ```sh
    openssl req -new -key privkey.pem -subj "/O=Example Corp/CN=shop.example.com" \\
        -addext "subjectAltName=DNS:shop.example.com,DNS:www.shop.example.com" -out shop.csr
    ```

    Submit `shop.csr` to the CA, replace `fullchain.pem` on a `change/` branch and follow the
    [production TLS steps](../README.md).
    """
)


def web1_readme(apps: list[str]) -> str:
    descriptions = {
        "nginx": "- [nginx](nginx/README.md) — reverse proxy and TLS termination",
        "app": "- [app](app/README.md) — the shopfront Django application (gunicorn, systemd)",
        "node-exporter": "- [node-exporter](node-exporter/README.md) — Prometheus host metrics on :9100",
    }
    app_lines = "\n".join(descriptions[a] for a in apps)
    steps = [
        "Create the VM on hypervisor hv2 (4 vCPU, 8 GB RAM, 40 GB disk, VLAN 20).",
        "Follow the [base installation](../../_common/README.md) with hostname `web1`, address 10.10.20.10.",
        "Create the service accounts and log rotation as in the [web1 shared steps](_common/README.md).",
    ]
    steps += [f"Install and configure [{a}]({a}/README.md)." for a in apps]
    steps.append("Check from outside: `curl -sI https://shop.example.com/healthz` answers `HTTP/2 200`.")
    step_lines = "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))
    return (
        md(
            """
            # web1 — production web server

            **Purpose:** terminates TLS for `shop.example.com` and runs the shopfront application
            behind nginx. Stateless: it can be rebuilt at any time, all data lives on
            [db1](../db1/README.md).

            ## Applications

            """
        )
        + app_lines
        + "\n\n## Rebuild from scratch\n\n"
        + step_lines
        + "\n\nBack to [production](../README.md).\n"
    )


WEB1_COMMON_README = md(
    """
    # web1 — steps shared by its applications

    1. Create the service user for the application:
       ```sh
       adduser --system --group --home /opt/shopfront --shell /usr/sbin/nologin shopfront
       install -d -o shopfront -g adm -m 0750 /var/log/shopfront
       ```
    2. Install the shared log rotation [`logrotate/web-apps`](logrotate/web-apps) as
       `/etc/logrotate.d/web-apps` (nginx's `manifest.toml` maps it).

    Back to [web1](../README.md).
    """
)

LOGROTATE_WEB_APPS = md(
    """
    # Managed by the CMDB: production/web1/_common/logrotate/web-apps
    /var/log/nginx/*.log /var/log/shopfront/*.log {
        daily
        rotate 14
        missingok
        notifempty
        compress
        delaycompress
        sharedscripts
        postrotate
            [ -s /run/nginx.pid ] && kill -USR1 "$(cat /run/nginx.pid)"
            systemctl kill -s HUP shopfront.service || true
        endscript
    }
    """
)

NGINX_CONF_V1 = md(
    """
    # Managed by the CMDB: production/web1/nginx — change it in Git, not on the host.
    user www-data;
    worker_processes auto;
    pid /run/nginx.pid;
    error_log /var/log/nginx/error.log warn;
    include /etc/nginx/modules-enabled/*.conf;

    events {
        worker_connections 1024;
    }

    http {
        sendfile on;
        tcp_nopush on;
        types_hash_max_size 2048;
        server_tokens off;
        client_max_body_size 10m;

        include /etc/nginx/mime.types;
        default_type application/octet-stream;

        log_format main '$remote_addr - $remote_user [$time_local] "$request" '
                        '$status $body_bytes_sent "$http_referer" "$http_user_agent" $request_time';
        access_log /var/log/nginx/access.log main;

        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_prefer_server_ciphers off;
        ssl_session_cache shared:SSL:10m;
        ssl_session_timeout 1d;

        upstream shopfront {
            server 127.0.0.1:8000;
            keepalive 16;
        }

        server {
            listen 80 default_server;
            listen [::]:80 default_server;
            server_name shop.example.com www.shop.example.com;
            return 301 https://shop.example.com$request_uri;
        }

        server {
            listen 443 ssl http2;
            listen [::]:443 ssl http2;
            server_name shop.example.com;

            ssl_certificate     /etc/ssl/certs/shop.example.com.fullchain.pem;
            ssl_certificate_key /etc/ssl/private/shop.example.com.key;

            location /static/ {
                alias /opt/shopfront/static/;
                expires 7d;
                access_log off;
            }

            location / {
                include /etc/nginx/snippets/proxy-params.conf;
                proxy_pass http://shopfront;
            }
        }
    }
    """
)

# Commit 9 on main: more connections, gzip.
NGINX_CONF = replace_once(
    replace_once(
        NGINX_CONF_V1,
        "    worker_connections 1024;\n",
        "    worker_connections 2048;\n    multi_accept on;\n",
    ),
    "    access_log /var/log/nginx/access.log main;\n",
    "    access_log /var/log/nginx/access.log main;\n\n"
    "    gzip on;\n"
    "    gzip_comp_level 5;\n"
    "    gzip_min_length 1024;\n"
    "    gzip_types text/plain text/css application/json application/javascript image/svg+xml;\n",
)

# Branch change/nginx-tls-hardening.
NGINX_CONF_HARDENED = replace_once(
    replace_once(
        NGINX_CONF,
        "    ssl_protocols TLSv1.2 TLSv1.3;\n    ssl_prefer_server_ciphers off;\n",
        "    ssl_protocols TLSv1.3;\n    ssl_prefer_server_ciphers off;\n    ssl_ecdh_curve X25519:prime256v1;\n",
    ),
    "        ssl_certificate_key /etc/ssl/private/shop.example.com.key;\n",
    "        ssl_certificate_key /etc/ssl/private/shop.example.com.key;\n"
    "        ssl_stapling on;\n"
    "        ssl_stapling_verify on;\n"
    '        add_header Strict-Transport-Security "max-age=63072000; includeSubDomains" always;\n',
)

TLS_README_HARDENED = TLS_README.replace(
    "Submit `shop.csr`",
    md(
        """
        ## Hardening (change/nginx-tls-hardening)

        Since November 2026 web1 accepts **TLS 1.3 only**, staples OCSP responses and sends HSTS for
        two years. Clients that still need TLS 1.2 (the payment provider's callback checker was the
        last one) must be verified before renewal:

        ```sh
        openssl s_client -connect shop.example.com:443 -tls1_2 </dev/null  # must fail
        openssl s_client -connect shop.example.com:443 -tls1_3 -status </dev/null | grep 'OCSP Response Status'
        ```

        """
    )
    + "Submit `shop.csr`",
)

# Byte-identical in production/web1/nginx and test/web-test1/nginx (a deliberate duplicate).
PROXY_PARAMS = md(
    """
    # Common proxy headers for applications behind nginx.
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    proxy_set_header X-Real-IP $remote_addr;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_connect_timeout 5s;
    proxy_read_timeout 60s;
    proxy_buffers 16 16k;
    """
)

NGINX_README = md(
    """
    # nginx on web1

    Reverse proxy in front of [the shopfront app](../app/README.md); terminates TLS for
    `shop.example.com` and serves static files.

    | | |
    |---|---|
    | Package | `nginx` 1.22 (Debian 12) |
    | Main config | [`files/etc/nginx/nginx.conf`](files/etc/nginx/nginx.conf) |
    | Certificate | from [production `_common/tls`](../../_common/tls/README.md) via `manifest.toml` |
    | Reload | `nginx -t && systemctl reload nginx` |

    ## Reproduce the configuration

    1. Install the package: `apt-get install -y nginx`.
    2. Install certificate and key as described in the [TLS steps](../../_common/README.md).
    3. Copy `files/etc/nginx/` to `/etc/nginx/` and remove the default site:
       ```sh
       rm -f /etc/nginx/sites-enabled/default
       nginx -t
       systemctl reload nginx
       ```
    4. Verify: `curl -sI https://shop.example.com | head -1` prints `HTTP/2 200`.

    Back to [web1](../README.md).
    """
)

NGINX_MANIFEST = md(
    """
    # Deployment manifest for production/web1/nginx.
    [[file]]
    path = "/etc/nginx/nginx.conf"
    mode = "0644"
    owner = "root"
    group = "root"

    [[file]]
    path = "/etc/nginx/snippets/proxy-params.conf"
    mode = "0644"

    [[file]]
    path = "/etc/ssl/certs/shop.example.com.fullchain.pem"
    source = "../../_common/tls/fullchain.pem"
    mode = "0644"

    [[file]]
    path = "/etc/ssl/private/shop.example.com.key"
    source = "../../_common/tls/privkey.pem"
    mode = "0600"
    owner = "root"
    group = "root"
    secret = true

    [[file]]
    path = "/etc/logrotate.d/web-apps"
    source = "../_common/logrotate/web-apps"
    mode = "0644"

    [deploy]
    reload = ["nginx -t", "systemctl reload nginx"]
    """
)

SHOPFRONT_SERVICE = md(
    """
    # Managed by the CMDB: production/web1/app
    [Unit]
    Description=Shopfront web application (gunicorn)
    Documentation=https://git.example.com/shop/shopfront
    After=network-online.target
    Wants=network-online.target

    [Service]
    Type=notify
    User=shopfront
    Group=shopfront
    WorkingDirectory=/opt/shopfront/current
    Environment=SHOPFRONT_CONFIG=/etc/shopfront/config.yaml
    ExecStart=/opt/shopfront/venv/bin/gunicorn --config /opt/shopfront/gunicorn.conf.py shopfront.wsgi
    ExecReload=/bin/kill -s HUP $MAINPID
    Restart=on-failure
    RestartSec=5
    NoNewPrivileges=true
    PrivateTmp=true
    ProtectSystem=strict
    ProtectHome=true
    ReadWritePaths=/var/log/shopfront

    [Install]
    WantedBy=multi-user.target
    """
)

GUNICORN_CONF = md(
    '''
    """Gunicorn settings for shopfront on web1 (managed by the CMDB: production/web1/app)."""

    import multiprocessing
    import os

    bind = "127.0.0.1:8000"
    workers = int(os.environ.get("SHOPFRONT_WORKERS", multiprocessing.cpu_count() * 2 + 1))
    worker_class = "gthread"
    threads = 4
    timeout = 30
    graceful_timeout = 20
    keepalive = 5
    max_requests = 2000
    max_requests_jitter = 200

    accesslog = "/var/log/shopfront/access.log"
    errorlog = "/var/log/shopfront/error.log"
    loglevel = "info"
    forwarded_allow_ips = "127.0.0.1"


    def post_fork(server, worker):
        """Log each worker start, so restarts are visible next to deploys."""
        server.log.info("worker %s spawned (pid %s)", worker.age, worker.pid)
    '''
)

HEALTHCHECK_PY = Exe(
    md(
        '''
        #!/usr/bin/env python3
        """Exit 0 when shopfront answers /healthz within two seconds, 2 otherwise (used by monitoring)."""

        import sys
        import urllib.request

        URL = "http://127.0.0.1:8000/healthz"

        try:
            with urllib.request.urlopen(URL, timeout=2) as response:
                body = response.read(200).decode("utf-8", "replace")
        except OSError as exc:
            print(f"CRITICAL: {URL}: {exc}")
            sys.exit(2)
        print(f"OK: {body.strip()}")
        '''
    )
)

SHOPFRONT_CONFIG_V1 = md(
    """
    # Shopfront runtime configuration (no secrets here: those come from the vault at deploy time).
    environment: production
    site:
      name: Example Shop
      base_url: https://shop.example.com
      currency: EUR
      languages: [en, de, it]
    database:
      host: db1.prod.example.net
      port: 5432
      name: shop
      user: shopfront
      sslmode: verify-full
    cache:
      backend: redis
      url: redis://127.0.0.1:6379/1
      default_ttl: 300
    features:
      new_checkout: false
      recommendations: true
    logging:
      level: INFO
      file: /var/log/shopfront/app.log
    """
)

SHOPFRONT_CONFIG = replace_once(
    replace_once(SHOPFRONT_CONFIG_V1, "  default_ttl: 300\n", "  default_ttl: 600\n"),
    "  new_checkout: false\n",
    "  new_checkout: true\n",
)

APP_README = md(
    """
    # shopfront application on web1

    The Django web shop, served by gunicorn on `127.0.0.1:8000` behind [nginx](../nginx/README.md).
    Releases are built and deployed by Jenkins on [build1](../../../internal/build1/README.md); this
    directory holds only the host configuration.

    | File on web1 | Purpose |
    |---|---|
    | `/etc/systemd/system/shopfront.service` | systemd unit |
    | `/etc/shopfront/config.yaml` | runtime settings (no secrets) |
    | `/opt/shopfront/gunicorn.conf.py` | gunicorn settings |
    | `/usr/local/bin/shopfront-healthcheck` | probe used by monitoring |

    ## Reproduce the configuration

    1. Create the `shopfront` user as in the [web1 shared steps](../_common/README.md).
    2. Create the virtualenv and deploy the current release (Jenkins job `shopfront-deploy`).
    3. Install the files from `files/` (modes and owners are in `manifest.toml`), then:
       ```sh
       systemctl daemon-reload
       systemctl enable --now shopfront
       /usr/local/bin/shopfront-healthcheck
       ```

    Back to [web1](../README.md).
    """
)

APP_MANIFEST = md(
    """
    # Deployment manifest for production/web1/app (shopfront).
    [[file]]
    path = "/etc/systemd/system/shopfront.service"
    mode = "0644"
    owner = "root"
    group = "root"

    [[file]]
    path = "/etc/shopfront/config.yaml"
    mode = "0640"
    owner = "root"
    group = "shopfront"

    [[file]]
    path = "/opt/shopfront/gunicorn.conf.py"
    mode = "0644"

    [[file]]
    path = "/usr/local/bin/shopfront-healthcheck"
    mode = "0755"

    [deploy]
    reload = ["systemctl daemon-reload", "systemctl restart shopfront"]
    """
)


def local_machine_manifest(env: str, machine: str, host: str) -> str:
    return md(
        f"""
        # How the portal reaches {machine}.
        [machine]
        transport = "local"   # demo: a directory stands for the machine's /
        root = "live/{env}/{machine}"
        host = "{host}"
        """
    )


def manual_machine_manifest(machine: str, why: str) -> str:
    return md(
        f"""
        # {machine} is configured by hand: {why}
        [machine]
        transport = "manual"
        """
    )


DB1_README = md(
    """
    # db1 — production database

    **Purpose:** PostgreSQL 16 primary for the shop (database `shop`). WAL is archived to
    `/var/backups/wal`, nightly dumps to `/var/backups/postgresql` (copied off-site by the backup
    server at 04:00).

    **Hardware:** VM on hv1, 4 vCPU, 16 GB RAM, 200 GB SSD (`/var/lib/postgresql` on its own volume).

    ## Applications

    - [postgresql](postgresql/README.md) — server configuration, access rules and backups

    ## Rebuild from scratch

    1. Create the VM and follow the [base installation](../../_common/README.md) with hostname `db1`,
       address 10.10.20.11.
    2. Mount the data volume on `/var/lib/postgresql` (ext4, `noatime`).
    3. Install and configure [postgresql](postgresql/README.md).
    4. Restore the latest dump (see "Restore" in the postgresql README) or start a replica from the
       WAL archive.
    5. Check from web1: `psql "host=db1.prod.example.net dbname=shop user=shopfront" -c 'select 1'`.

    Back to [production](../README.md).
    """
)

POSTGRESQL_CONF = md(
    """
    # Managed by the CMDB: production/db1/postgresql
    # PostgreSQL 16 on db1 (16 GB RAM). Only non-default settings are listed.

    data_directory = '/var/lib/postgresql/16/main'
    hba_file = '/etc/postgresql/16/main/pg_hba.conf'
    ident_file = '/etc/postgresql/16/main/pg_ident.conf'
    external_pid_file = '/var/run/postgresql/16-main.pid'

    # Connections
    listen_addresses = 'localhost,10.10.20.11'
    port = 5432
    max_connections = 200
    unix_socket_directories = '/var/run/postgresql'
    ssl = on
    ssl_cert_file = '/etc/ssl/certs/ssl-cert-snakeoil.pem'
    ssl_key_file = '/etc/ssl/private/ssl-cert-snakeoil.key'

    # Memory
    shared_buffers = 2GB
    work_mem = 16MB
    maintenance_work_mem = 256MB
    effective_cache_size = 6GB

    # Write-ahead log and archiving
    wal_level = replica
    max_wal_size = 2GB
    min_wal_size = 256MB
    archive_mode = on
    archive_command = 'test ! -f /var/backups/wal/%f && cp %p /var/backups/wal/%f'

    # Logging
    log_line_prefix = '%m [%p] %q%u@%d '
    log_min_duration_statement = 500ms
    log_checkpoints = on
    log_lock_waits = on
    log_timezone = 'Europe/Berlin'

    # Locale
    datestyle = 'iso, dmy'
    timezone = 'Europe/Berlin'
    lc_messages = 'C.UTF-8'
    default_text_search_config = 'pg_catalog.english'
    """
)

# Branch change/postgres-tuning.
POSTGRESQL_CONF_TUNED = replace_once(
    POSTGRESQL_CONF,
    md(
        """
        shared_buffers = 2GB
        work_mem = 16MB
        maintenance_work_mem = 256MB
        effective_cache_size = 6GB
        """
    ),
    md(
        """
        shared_buffers = 4GB                   # 25 % of RAM
        work_mem = 32MB
        maintenance_work_mem = 1GB
        effective_cache_size = 12GB            # 75 % of RAM
        huge_pages = try

        # Planner (SSD storage)
        random_page_cost = 1.1
        effective_io_concurrency = 200
        max_parallel_workers_per_gather = 2
        """
    ),
)

PG_HBA = md(
    """
    # Managed by the CMDB: production/db1/postgresql
    # TYPE  DATABASE        USER            ADDRESS                 METHOD
    local   all             postgres                                peer
    local   all             all                                     peer
    host    all             all             127.0.0.1/32            scram-sha-256
    host    all             all             ::1/128                 scram-sha-256
    hostssl shop            shopfront       10.10.20.10/32          scram-sha-256
    hostssl shop            readonly        10.10.40.10/32          scram-sha-256
    host    all             all             0.0.0.0/0               reject
    """
)

PG_BACKUP_SH = Exe(
    md(
        """
        #!/usr/bin/env bash
        # Nightly logical backup of every database on this server; keeps KEEP_DAYS days.
        # Managed by the CMDB: runs from /etc/cron.d/pg-backup as user postgres.
        set -euo pipefail

        BACKUP_DIR=${BACKUP_DIR:-/var/backups/postgresql}
        KEEP_DAYS=${KEEP_DAYS:-14}
        STAMP=$(date +%Y-%m-%dT%H%M)

        mkdir -p "$BACKUP_DIR"
        databases=$(psql -AtX -c "SELECT datname FROM pg_database WHERE datallowconn AND datname <> 'template1'")
        for db in $databases; do
            pg_dump --format=custom --compress=6 --file="$BACKUP_DIR/${db}-${STAMP}.dump" "$db"
        done
        pg_dumpall --globals-only > "$BACKUP_DIR/globals-${STAMP}.sql"

        find "$BACKUP_DIR" -type f -mtime +"$KEEP_DAYS" -delete
        logger -t pg-backup "finished: $(find "$BACKUP_DIR" -type f | wc -l) files kept in $BACKUP_DIR"
        """
    )
)

PG_BACKUP_CRON = md(
    """
    # Managed by the CMDB: production/db1/postgresql
    # m  h  dom mon dow  user      command
    15   2  *   *   *    postgres  /usr/local/bin/pg-backup.sh
    """
)

POSTGRESQL_README = md(
    """
    # PostgreSQL on db1

    PostgreSQL 16 from the Debian 12 packages; one cluster `16/main` with the database `shop`.

    ## Reproduce the configuration

    1. `apt-get install -y postgresql-16`
    2. Install `files/etc/postgresql/16/main/*` (modes in `manifest.toml`) and restart:
       ```sh
       systemctl restart postgresql@16-main
       ```
    3. Create the roles and the database:
       ```sql
       CREATE ROLE shopfront LOGIN PASSWORD :'from_vault';
       CREATE ROLE readonly LOGIN PASSWORD :'from_vault';
       CREATE DATABASE shop OWNER shopfront;
       ```
    4. Install the backup script and its cron entry from `files/`.

    ## Restore

    ```sh
    pg_restore --create --dbname=postgres /var/backups/postgresql/shop-<stamp>.dump
    ```

    Back to [db1](../README.md).
    """
)

POSTGRESQL_MANIFEST = md(
    """
    # Deployment manifest for production/db1/postgresql.
    [[file]]
    path = "/etc/postgresql/16/main/postgresql.conf"
    mode = "0644"
    owner = "postgres"
    group = "postgres"

    [[file]]
    path = "/etc/postgresql/16/main/pg_hba.conf"
    mode = "0640"
    owner = "postgres"
    group = "postgres"

    [[file]]
    path = "/usr/local/bin/pg-backup.sh"
    mode = "0755"

    [[file]]
    path = "/etc/cron.d/pg-backup"
    mode = "0644"

    [deploy]
    reload = ["systemctl reload postgresql@16-main"]
    """
)

ROUTER1_README = md(
    """
    # router1 — production edge router

    **Purpose:** edge router and firewall for production, test and internal: NAT to the Internet,
    VLANs 20 (production), 30 (test) and 40 (internal), WireGuard VPN for the team.

    **Hardware:** MikroTik CCR2004-16G-2S+, RouterOS 7. Rack B2, U12. Console cable in the rack drawer.

    This machine is **configured by hand** (transport `manual`): RouterOS has no files the portal
    can deploy. Keep these steps exact — they are the only record.

    ## Rebuild from scratch

    1. Reset to no defaults: `/system reset-configuration no-defaults=yes skip-backup=yes`.
    2. Set identity and admin user:
       ```
       /system identity set name=router1
       /user add name=ops group=full password=<from vault>
       /user remove admin
       ```
    3. Create the bridge and VLANs 20, 30, 40 on `sfp-sfpplus1`; addresses 10.10.20.1/24,
       10.10.30.1/24, 10.10.40.1/24.
    4. Uplink on `ether1` with the static address from the ISP contract (see vault: `isp/contract`).
    5. Firewall:
       - forward 443/tcp and 80/tcp from the Internet to web1 (10.10.20.10) only;
       - allow VLAN 40 → VLAN 20 and 30 on 22/tcp (build1 deploys);
       - allow VLAN 30 → VLAN 20 nothing; drop everything else.
    6. WireGuard on 51820/udp, peers from the vault (`wireguard/peers`).
    7. Export and keep a copy: `/export file=router1-<date>` (do **not** commit it — it holds secrets).

    Back to [production](../README.md).
    """
)

TEST_README = md(
    """
    # Test

    A smaller copy of production for testing releases and configuration changes before they go
    live. Reachable only over the VPN. The database is refreshed every Monday from the production
    dump (anonymised).

    ![Topology](topology.svg)

    ## Machines

    | Machine | Purpose | Address | Transport |
    |---|---|---|---|
    | [web-test1](web-test1/README.md) | nginx and shopfront, test build | 10.10.30.10 | local |
    | [db-test1](db-test1/README.md) | PostgreSQL 16, anonymised copy of `shop` | 10.10.30.11 | local |

    Differences from production: self-signed certificate, one gunicorn worker, no WAL archiving.

    Back to [all environments](../README.md).
    """
)

WEB_TEST1_README = md(
    """
    # web-test1 — test web server

    **Purpose:** runs the release candidate of shopfront behind nginx at
    `https://shop.test.example.net` (VPN only).

    ## Applications

    - [nginx](nginx/README.md) — reverse proxy, self-signed certificate

    ## Rebuild from scratch

    1. Follow the [base installation](../../_common/README.md) with hostname `web-test1`,
       address 10.10.30.10.
    2. Install and configure [nginx](nginx/README.md).
    3. Ask Jenkins on build1 to run `shopfront-deploy` with `TARGET=test`.

    Back to [test](../README.md).
    """
)

WEB_TEST1_NGINX_CONF = md(
    """
    # Managed by the CMDB: test/web-test1/nginx
    user www-data;
    worker_processes 2;
    pid /run/nginx.pid;
    error_log /var/log/nginx/error.log info;
    include /etc/nginx/modules-enabled/*.conf;

    events {
        worker_connections 512;
    }

    http {
        sendfile on;
        server_tokens off;
        client_max_body_size 10m;
        include /etc/nginx/mime.types;
        default_type application/octet-stream;
        access_log /var/log/nginx/access.log;

        server {
            listen 443 ssl http2;
            server_name shop.test.example.net;
            ssl_certificate     /etc/ssl/certs/ssl-cert-snakeoil.pem;
            ssl_certificate_key /etc/ssl/private/ssl-cert-snakeoil.key;

            location / {
                include /etc/nginx/snippets/proxy-params.conf;
                proxy_pass http://127.0.0.1:8000;
            }
        }
    }
    """
)

WEB_TEST1_NGINX_README = md(
    """
    # nginx on web-test1

    Same role as [nginx on web1](../../../production/web1/nginx/README.md), with the Debian
    snake-oil certificate instead of the production one.

    ## Reproduce the configuration

    1. `apt-get install -y nginx ssl-cert`
    2. Copy `files/etc/nginx/` to `/etc/nginx/`, then `nginx -t && systemctl reload nginx`.

    Back to [web-test1](../README.md).
    """
)

DB_TEST1_README = md(
    """
    # db-test1 — test database

    **Purpose:** PostgreSQL 16 with an anonymised copy of the production database, refreshed every
    Monday 05:00 by Jenkins (`db-refresh-test`).

    ## Applications

    - [postgresql](postgresql/README.md) — server configuration
    - `backup/` — nightly dump kept for two days (so a broken test refresh can be undone)

    ## Rebuild from scratch

    1. Follow the [base installation](../../_common/README.md) with hostname `db-test1`,
       address 10.10.30.11.
    2. Install and configure [postgresql](postgresql/README.md).
    3. Run the Jenkins job `db-refresh-test` once.

    Back to [test](../README.md).
    """
)

DB_TEST1_POSTGRESQL_CONF = md(
    """
    # Managed by the CMDB: test/db-test1/postgresql
    listen_addresses = 'localhost,10.10.30.11'
    max_connections = 50
    shared_buffers = 512MB
    work_mem = 8MB
    wal_level = minimal
    max_wal_senders = 0
    log_min_duration_statement = 200ms
    log_statement = 'ddl'
    timezone = 'Europe/Berlin'
    """
)

DB_TEST1_PG_HBA = md(
    """
    # Managed by the CMDB: test/db-test1/postgresql
    # TYPE  DATABASE        USER            ADDRESS                 METHOD
    local   all             postgres                                peer
    host    shop            shopfront       10.10.30.10/32          scram-sha-256
    host    all             all             10.10.40.10/32          scram-sha-256
    host    all             all             0.0.0.0/0               reject
    """
)

DB_TEST1_POSTGRESQL_README = md(
    """
    # PostgreSQL on db-test1

    Like [production's](../../../production/db1/postgresql/README.md) but small, without WAL
    archiving and logging all DDL.

    1. `apt-get install -y postgresql-16`
    2. Install `files/etc/postgresql/16/main/*` and `systemctl restart postgresql@16-main`.

    Back to [db-test1](../README.md).
    """
)

DB_TEST1_BACKUP_SH = Exe(
    md(
        """
        #!/bin/sh
        # Keep the last two nightly dumps of the test database.
        set -eu
        DIR=/var/backups/pg-nightly
        mkdir -p "$DIR"
        pg_dump --format=custom --file="$DIR/shop-$(date +%F).dump" shop
        ls -1t "$DIR"/shop-*.dump | tail -n +3 | xargs -r rm --
        """
    )
)

DB_TEST1_BACKUP_CRON = md(
    """
    # m h dom mon dow user     command
    30  1 *   *   *   postgres /usr/local/bin/pg-dump-nightly.sh
    """
)

INTERNAL_README = md(
    """
    # Internal

    Infrastructure for the team itself: the build server and the office printer. Not reachable
    from the Internet.

    ![Topology](topology.svg)

    ## Machines

    | Machine | Purpose | Address | Transport |
    |---|---|---|---|
    | [build1](build1/README.md) | Jenkins: builds shopfront, deploys to test and production | 10.10.40.10 | local |
    | [printer1](printer1/README.md) | Office laser printer (HP LaserJet Pro M479fdw) | 10.10.40.50 | manual |

    Back to [all environments](../README.md).
    """
)

BUILD1_README = md(
    """
    # build1 — build server

    **Purpose:** Jenkins LTS with configuration-as-code. Builds shopfront on every push, deploys
    to test automatically and to production after approval. Holds the deploy SSH key (in the
    Jenkins credential store, not in this repository).

    **Hardware:** VM on hv1, 8 vCPU, 16 GB RAM, 200 GB disk.

    ## Applications

    - [jenkins](jenkins/README.md) — Jenkins LTS and its JCasC configuration

    ## Rebuild from scratch

    1. Follow the [base installation](../../_common/README.md) with hostname `build1`,
       address 10.10.40.10.
    2. Install Docker (`apt-get install -y docker.io`) for the build agents.
    3. Install and configure [jenkins](jenkins/README.md).
    4. Restore the credentials from the vault (`jenkins/credentials.xml.age`).

    Back to [internal](../README.md).
    """
)

JENKINS_README = md(
    """
    # Jenkins on build1

    Jenkins LTS from the upstream Debian repository, configured entirely by
    [JCasC](files/var/lib/jenkins/casc_configs/jenkins.yaml).

    ## Reproduce the configuration

    1. Add the Jenkins apt repository and `apt-get install -y openjdk-17-jre jenkins`.
    2. Install the files from `files/` (owner `jenkins`, see `manifest.toml`).
    3. Install the plugins: `jenkins-plugin-cli --plugins configuration-as-code git workflow-aggregator`.
    4. `systemctl daemon-reload && systemctl restart jenkins`, then open <https://build1.internal.example.net>.

    Back to [build1](../README.md).
    """
)

JENKINS_OVERRIDE = md(
    """
    # Managed by the CMDB: internal/build1/jenkins
    [Service]
    Environment="JAVA_OPTS=-Djava.awt.headless=true -Xmx4g"
    Environment="CASC_JENKINS_CONFIG=/var/lib/jenkins/casc_configs"
    Environment="JENKINS_PORT=8080"
    LimitNOFILE=8192
    """
)

JENKINS_YAML = md(
    """
    # Jenkins configuration as code (JCasC) — managed by the CMDB: internal/build1/jenkins
    jenkins:
      systemMessage: "build1 — configured from Git. Manual changes are overwritten."
      numExecutors: 4
      mode: NORMAL
      securityRealm:
        local:
          allowsSignup: false
      authorizationStrategy:
        loggedInUsersCanDoAnything:
          allowAnonymousRead: false
    unclassified:
      location:
        url: https://build1.internal.example.net/
        adminAddress: ops@example.com
    jobs:
      - script: >
          pipelineJob('shopfront-deploy') {
            parameters { choiceParam('TARGET', ['test', 'production']) }
            definition { cpsScm { scm { git('https://git.example.com/shop/shopfront.git') } } }
          }
    """
)

JENKINS_MANIFEST = md(
    """
    # Deployment manifest for internal/build1/jenkins.
    [[file]]
    path = "/var/lib/jenkins/casc_configs/jenkins.yaml"
    mode = "0640"
    owner = "jenkins"
    group = "jenkins"

    [[file]]
    path = "/etc/systemd/system/jenkins.service.d/override.conf"
    mode = "0644"

    [deploy]
    reload = ["systemctl daemon-reload", "systemctl restart jenkins"]
    """
)

PRINTER1_README = md(
    """
    # printer1 — office printer

    **Purpose:** HP LaserJet Pro M479fdw on the first floor; scan-to-email for the office.
    **Address:** 10.10.40.50 (DHCP reservation on router1, MAC `3c:52:82:1a:7e:04`).

    Configured by hand in its web interface (transport `manual`).

    ## Rebuild from scratch

    1. Factory reset: *Setup → Service → Restore Defaults*.
    2. Network: static IPv4 10.10.40.50/24, gateway 10.10.40.1, DNS 10.10.40.1.
    3. Security: set the admin password (vault: `printer1/admin`), disable Telnet, FTP and SNMPv1.
    4. Scan to email: SMTP `mail.example.com:587`, STARTTLS, account `scanner@example.com`
       (password in the vault).
    5. Update the firmware from <https://support.hp.com> and note the version here: **002.2435A**.

    Back to [internal](../README.md).
    """
)

NODE_EXPORTER_README = md(
    """
    # Prometheus node-exporter on web1

    Exposes host metrics (CPU, memory, disks, systemd units) on `10.10.20.10:9100` for the
    Prometheus server. Only the monitoring network may connect (router1 rule "monitoring").

    ## Reproduce the configuration

    1. `apt-get install -y prometheus-node-exporter`
    2. Install the files from `files/` and restart:
       ```sh
       systemctl daemon-reload
       systemctl restart prometheus-node-exporter
       curl -s http://10.10.20.10:9100/metrics | head
       ```
    3. Add `web1:9100` to the `node` job on the Prometheus server.

    Back to [web1](../README.md).
    """
)

NODE_EXPORTER_DEFAULTS = md(
    """
    # Managed by the CMDB: production/web1/node-exporter
    ARGS="--web.listen-address=10.10.20.10:9100 \\
          --collector.systemd \\
          --collector.systemd.unit-include=(nginx|shopfront|ssh)\\.service \\
          --no-collector.wifi \\
          --no-collector.infiniband"
    """
)

NODE_EXPORTER_OVERRIDE = md(
    """
    # Managed by the CMDB: production/web1/node-exporter
    [Service]
    Restart=always
    RestartSec=10
    MemoryMax=128M
    ProtectSystem=strict
    """
)

NODE_EXPORTER_MANIFEST = md(
    """
    # Deployment manifest for production/web1/node-exporter.
    [[file]]
    path = "/etc/default/prometheus-node-exporter"
    mode = "0644"

    [[file]]
    path = "/etc/systemd/system/prometheus-node-exporter.service.d/override.conf"
    mode = "0644"

    [deploy]
    reload = ["systemctl daemon-reload", "systemctl restart prometheus-node-exporter"]
    """
)


# --------------------------------------------------------------------------------------------------
# Building the history
# --------------------------------------------------------------------------------------------------


def build_history(work: Path, privkey: str, cert: str) -> dict[str, str]:
    """Commit main's history in ``work``, tag the baseline and create the change branches.

    Returns {ref name: commit id}.
    """
    refs: dict[str, str] = {}
    p, t, i = "production", "test", "internal"

    commit(
        work,
        ALICE,
        "2026-09-01T09:12:00+02:00",
        "Initial layout: environments, base installation, secrets list\n\n"
        "Top-level README with the environment table, the shared base installation in _common/\n"
        "and .cmdb-secrets for the files the portal must never display.\n",
        {
            "README.md": TOP_README,
            ".cmdb-secrets": CMDB_SECRETS,
            "_common/README.md": COMMON_README,
            "_common/ssh/sshd_config.d/10-hardening.conf": SSHD_HARDENING,
            "_common/users/admins.yaml": ADMINS_YAML,
            f"{p}/README.md": production_readme(with_router=False),
            f"{p}/topology.svg": production_topology(with_router=False),
        },
    )

    commit(
        work,
        ALICE,
        "2026-09-03T14:40:00+02:00",
        "production/web1: nginx reverse proxy with TLS\n\n"
        "The certificate and key are shared by all production machines (production/_common/tls).\n",
        {
            f"{p}/_common/README.md": PROD_COMMON_README,
            f"{p}/_common/tls/README.md": TLS_README,
            f"{p}/_common/tls/fullchain.pem": cert,
            f"{p}/_common/tls/privkey.pem": privkey,
            f"{p}/web1/README.md": web1_readme(["nginx"]),
            f"{p}/web1/manifest.toml": local_machine_manifest(p, "web1", "web1.prod.example.net"),
            f"{p}/web1/_common/README.md": WEB1_COMMON_README,
            f"{p}/web1/_common/logrotate/web-apps": LOGROTATE_WEB_APPS,
            f"{p}/web1/nginx/README.md": NGINX_README,
            f"{p}/web1/nginx/manifest.toml": NGINX_MANIFEST,
            f"{p}/web1/nginx/files/etc/nginx/nginx.conf": NGINX_CONF_V1,
            f"{p}/web1/nginx/files/etc/nginx/snippets/proxy-params.conf": PROXY_PARAMS,
        },
    )

    commit(
        work,
        BOGDAN,
        "2026-09-08T10:05:00+02:00",
        "production/db1: PostgreSQL 16 primary with nightly backups\n",
        {
            f"{p}/db1/README.md": DB1_README,
            f"{p}/db1/manifest.toml": local_machine_manifest(p, "db1", "db1.prod.example.net"),
            f"{p}/db1/postgresql/README.md": POSTGRESQL_README,
            f"{p}/db1/postgresql/manifest.toml": POSTGRESQL_MANIFEST,
            f"{p}/db1/postgresql/files/etc/postgresql/16/main/postgresql.conf": POSTGRESQL_CONF,
            f"{p}/db1/postgresql/files/etc/postgresql/16/main/pg_hba.conf": PG_HBA,
            f"{p}/db1/postgresql/files/usr/local/bin/pg-backup.sh": PG_BACKUP_SH,
            f"{p}/db1/postgresql/files/etc/cron.d/pg-backup": PG_BACKUP_CRON,
        },
    )

    commit(
        work,
        CHIARA,
        "2026-09-15T16:30:00+02:00",
        "production/router1: document the edge router (manual)\n\n"
        "RouterOS is configured by hand; the README is the rebuild procedure.\n"
        "Topology updated: the Internet reaches web1 through router1.\n",
        {
            f"{p}/router1/README.md": ROUTER1_README,
            f"{p}/router1/manifest.toml": manual_machine_manifest(
                "router1", "RouterOS, console and WinBox only."
            ),
            f"{p}/README.md": production_readme(with_router=True),
            f"{p}/topology.svg": production_topology(with_router=True),
        },
    )

    commit(
        work,
        BOGDAN,
        "2026-09-22T11:20:00+02:00",
        "test: web-test1 and db-test1 mirror production\n",
        {
            f"{t}/README.md": TEST_README,
            f"{t}/topology.svg": test_topology(),
            f"{t}/web-test1/README.md": WEB_TEST1_README,
            f"{t}/web-test1/manifest.toml": local_machine_manifest(
                t, "web-test1", "web-test1.test.example.net"
            ),
            f"{t}/web-test1/nginx/README.md": WEB_TEST1_NGINX_README,
            f"{t}/web-test1/nginx/files/etc/nginx/nginx.conf": WEB_TEST1_NGINX_CONF,
            f"{t}/web-test1/nginx/files/etc/nginx/snippets/proxy-params.conf": PROXY_PARAMS,
            f"{t}/db-test1/README.md": DB_TEST1_README,
            f"{t}/db-test1/manifest.toml": local_machine_manifest(t, "db-test1", "db-test1.test.example.net"),
            f"{t}/db-test1/postgresql/README.md": DB_TEST1_POSTGRESQL_README,
            f"{t}/db-test1/postgresql/files/etc/postgresql/16/main/postgresql.conf": DB_TEST1_POSTGRESQL_CONF,
            f"{t}/db-test1/postgresql/files/etc/postgresql/16/main/pg_hba.conf": DB_TEST1_PG_HBA,
        },
    )

    commit(
        work,
        DEV,
        "2026-10-01T09:45:00+02:00",
        "production/web1/app: run shopfront with gunicorn under systemd\n",
        {
            f"{p}/web1/README.md": web1_readme(["nginx", "app"]),
            f"{p}/web1/app/README.md": APP_README,
            f"{p}/web1/app/manifest.toml": APP_MANIFEST,
            f"{p}/web1/app/files/etc/systemd/system/shopfront.service": SHOPFRONT_SERVICE,
            f"{p}/web1/app/files/etc/shopfront/config.yaml": SHOPFRONT_CONFIG_V1,
            f"{p}/web1/app/files/opt/shopfront/gunicorn.conf.py": GUNICORN_CONF,
            f"{p}/web1/app/files/usr/local/bin/shopfront-healthcheck": HEALTHCHECK_PY,
        },
    )

    commit(
        work,
        EMEKA,
        "2026-10-06T13:15:00+02:00",
        "internal: build1 (Jenkins) and printer1\n",
        {
            f"{i}/README.md": INTERNAL_README,
            f"{i}/topology.svg": internal_topology(),
            f"{i}/build1/README.md": BUILD1_README,
            f"{i}/build1/manifest.toml": local_machine_manifest(i, "build1", "build1.internal.example.net"),
            f"{i}/build1/jenkins/README.md": JENKINS_README,
            f"{i}/build1/jenkins/manifest.toml": JENKINS_MANIFEST,
            f"{i}/build1/jenkins/files/var/lib/jenkins/casc_configs/jenkins.yaml": JENKINS_YAML,
            f"{i}/build1/jenkins/files/etc/systemd/system/jenkins.service.d/override.conf": JENKINS_OVERRIDE,
            f"{i}/printer1/README.md": PRINTER1_README,
            f"{i}/printer1/manifest.toml": manual_machine_manifest("printer1", "vendor web interface only."),
        },
    )

    # Lint case: an application without README.
    refs[TAG] = commit(
        work,
        BOGDAN,
        "2026-10-20T22:48:00+02:00",
        "db-test1: keep two nightly dumps of the test database\n",
        {
            f"{t}/db-test1/backup/files/usr/local/bin/pg-dump-nightly.sh": DB_TEST1_BACKUP_SH,
            f"{t}/db-test1/backup/files/etc/cron.d/pg-dump-nightly": DB_TEST1_BACKUP_CRON,
        },
    )
    git(
        work,
        "tag",
        "-a",
        TAG,
        "-m",
        "Configuration baseline October 2026\n\nAudited by A. Lindqvist; matches the live machines.",
        env=identity(ALICE, "2026-10-31T17:00:00+01:00"),
    )

    commit(
        work,
        ALICE,
        "2026-11-03T08:30:00+01:00",
        "web1 nginx: more worker connections, enable gzip\n\n"
        "Black-Friday load test saturated 1024 connections per worker.\n",
        {f"{p}/web1/nginx/files/etc/nginx/nginx.conf": NGINX_CONF},
    )

    refs[BRANCH] = commit(
        work,
        DEV,
        "2026-11-12T15:02:00+01:00",
        "shopfront: enable the new checkout, cache pages for 10 minutes\n",
        {f"{p}/web1/app/files/etc/shopfront/config.yaml": SHOPFRONT_CONFIG},
    )

    # Change-request branches, each forked from the tip of main.
    name = "change/nginx-tls-hardening"
    git(work, "checkout", "-q", "-b", name, BRANCH)
    commit(
        work,
        ALICE,
        "2026-11-17T10:00:00+01:00",
        "nginx on web1: TLS 1.3 only, OCSP stapling, HSTS\n\n"
        "Closes the findings of the October penetration test (TLS 1.2 CBC suites, missing HSTS).\n",
        {f"{p}/web1/nginx/files/etc/nginx/nginx.conf": NGINX_CONF_HARDENED},
    )
    refs[name] = commit(
        work,
        CHIARA,
        "2026-11-18T09:20:00+01:00",
        "TLS README: document the hardening and how to verify it\n",
        {f"{p}/_common/tls/README.md": TLS_README_HARDENED},
    )

    name = "change/postgres-tuning"
    git(work, "checkout", "-q", "-b", name, BRANCH)
    refs[name] = commit(
        work,
        BOGDAN,
        "2026-11-19T14:10:00+01:00",
        "db1: size memory settings for 16 GB RAM and SSD storage\n\n"
        "shared_buffers 25 %, effective_cache_size 75 % of RAM; planner costs for SSD.\n"
        "Needs a restart of postgresql@16-main (shared_buffers, huge_pages).\n",
        {f"{p}/db1/postgresql/files/etc/postgresql/16/main/postgresql.conf": POSTGRESQL_CONF_TUNED},
    )

    name = "change/new-monitoring-agent"
    git(work, "checkout", "-q", "-b", name, BRANCH)
    refs[name] = commit(
        work,
        FATIMA,
        "2026-11-20T11:00:00+01:00",
        "web1: add the Prometheus node-exporter\n",
        {
            f"{p}/web1/README.md": web1_readme(["nginx", "app", "node-exporter"]),
            f"{p}/web1/node-exporter/README.md": NODE_EXPORTER_README,
            f"{p}/web1/node-exporter/manifest.toml": NODE_EXPORTER_MANIFEST,
            f"{p}/web1/node-exporter/files/etc/default/prometheus-node-exporter": NODE_EXPORTER_DEFAULTS,
            f"{p}/web1/node-exporter/files/etc/systemd/system/"
            "prometheus-node-exporter.service.d/override.conf": NODE_EXPORTER_OVERRIDE,
        },
    )

    git(work, "checkout", "-q", BRANCH)
    return refs


# --------------------------------------------------------------------------------------------------
# The live trees (what the "machines" actually have)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Declared:
    target: str  # absolute path on the machine
    source: Path  # file in the work tree
    mode: int


def load_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise DemoError(f"internal error: {path} is not valid TOML: {exc}") from exc


def declared_files(app_dir: Path) -> list[Declared]:
    """The files an application directory declares: its ``files/`` tree plus manifest ``source`` entries."""
    manifest_path = app_dir / "manifest.toml"
    entries = (
        {e["path"]: e for e in load_toml(manifest_path).get("file", [])} if manifest_path.exists() else {}
    )
    out: list[Declared] = []
    files_root = app_dir / "files"
    if files_root.is_dir():
        for f in sorted(files_root.rglob("*")):
            if not f.is_file():
                continue
            target = "/" + f.relative_to(files_root).as_posix()
            entry = entries.pop(target, {})
            default = 0o755 if f.stat().st_mode & 0o111 else 0o644
            out.append(Declared(target, f, int(entry["mode"], 8) if "mode" in entry else default))
    for target, entry in entries.items():
        if "source" in entry:
            source = (app_dir / entry["source"]).resolve()
            out.append(Declared(target, source, int(entry.get("mode", "0644"), 8)))
    return out


def local_machines(work: Path) -> list[tuple[str, str]]:
    """(machine path, root) for every machine whose manifest says transport = "local"."""
    found = []
    for manifest in sorted(work.glob("*/*/manifest.toml")):
        rel = manifest.parent.relative_to(work).as_posix()
        if rel.startswith((".", "_")) or "/_" in rel:
            continue
        machine = load_toml(manifest).get("machine", {})
        if machine.get("transport") == "local":
            found.append((rel, machine["root"]))
    return found


def build_live(outdir: Path, work: Path) -> list[str]:
    """Write every local machine's live tree from ``main`` in ``work``, then add drift; return notes."""
    notes: list[str] = []
    for machine, root in local_machines(work):
        live_root = outdir / root
        live_root.mkdir(parents=True, exist_ok=True)
        count = 0
        for app_dir in sorted(
            d for d in (work / machine).iterdir() if d.is_dir() and not d.name.startswith((".", "_"))
        ):
            for item in declared_files(app_dir):
                dest = live_root / item.target.lstrip("/")
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(item.source, dest)
                dest.chmod(item.mode)
                count += 1
        notes.append(f"{root}: {count} declared files")

    # Drift 1: one changed line in nginx.conf on production/web1.
    nginx = outdir / "live/production/web1/etc/nginx/nginx.conf"
    nginx.write_text(
        replace_once(
            nginx.read_text(),
            "client_max_body_size 10m;",
            "client_max_body_size 64m;  # hotfix INC-2026-118, not in Git yet",
        )
    )
    # Drift 2: mode 0600 on the machine, declared 0644.
    (outdir / "live/production/web1/etc/systemd/system/shopfront.service").chmod(0o600)
    # Drift 3: a declared file missing on the machine.
    (outdir / "live/production/db1/etc/cron.d/pg-backup").unlink()
    return notes


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def prepare_outdir(outdir: Path, force: bool) -> None:
    existing = [part for part in DEMO_PARTS if (outdir / part).exists()]
    if existing and not force:
        raise RefusedError(
            f"{outdir} already holds a demo ({', '.join(existing)}); "
            "use --force to delete the directory and build it again"
        )
    if force and outdir.exists():
        if not outdir.is_dir():
            raise RefusedError(f"{outdir} exists and is not a directory")
        resolved = outdir.resolve()
        if (
            resolved == Path(resolved.anchor)
            or resolved == Path.home().resolve()
            or Path.cwd().resolve().is_relative_to(resolved)
        ):
            raise RefusedError(f"refusing to delete {resolved} (root, home or the current directory)")
        if not existing and any(outdir.iterdir()):
            raise RefusedError(
                f"refusing to delete {outdir}: it is not empty and does not look like a demo "
                f"(no {', '.join(DEMO_PARTS)})"
            )
        shutil.rmtree(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise RefusedError(f"{outdir} exists and is not a directory")
    outdir.mkdir(parents=True, exist_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Create a demo configuration repository (bare origin, a clone, live machine trees).",
    )
    parser.add_argument("outdir", type=Path, help="directory to create origin.git, work/ and live/ in")
    parser.add_argument("--force", action="store_true", help="delete OUTDIR first if it already holds a demo")
    args = parser.parse_args(argv)

    if shutil.which("git") is None:
        print("error: the `git` command is not installed or not on PATH", file=sys.stderr)
        return 2
    try:
        prepare_outdir(args.outdir, args.force)
    except (RefusedError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    outdir = args.outdir.resolve()
    origin, work = outdir / "origin.git", outdir / "work"
    try:
        privkey, cert, tool = make_tls_material()
        git(outdir, "init", "-q", "--bare", "-b", BRANCH, str(origin))
        git(outdir, "-c", f"init.defaultBranch={BRANCH}", "clone", "-q", str(origin), str(work))
        git(work, "symbolic-ref", "HEAD", f"refs/heads/{BRANCH}")
        refs = build_history(work, privkey, cert)
        branches = [r for r in refs if r.startswith("change/")]
        git(work, "push", "-q", "origin", BRANCH, *branches, f"refs/tags/{TAG}")
        git(work, "branch", "-q", f"--set-upstream-to=origin/{BRANCH}", BRANCH)
        live_notes = build_live(outdir, work)
        log = git(origin, "log", "--format=%h %ad %<(16,trunc)%an %s", "--date=short", BRANCH)
    except DemoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    print(f"Demo configuration repository built in {outdir}")
    print(f"  origin (bare): {origin}")
    print(f"  clone:         {work}  (on {BRANCH})")
    print(f"  TLS key made with {tool}: production/_common/tls/privkey.pem (listed in .cmdb-secrets)")
    print(f"\nmain ({len(log.splitlines())} commits):")
    for line in log.splitlines():
        print(f"  {line}")
    print(f"\ntag {TAG} -> {refs[TAG][:10]}")
    print("change branches:")
    for name in branches:
        print(f"  {name} -> {refs[name][:10]}")
    print("\nlive trees (relative to OUTDIR; machine manifests' `root`):")
    for note in live_notes:
        print(f"  {note}")
    print("deliberate drift:")
    print("  live/production/web1/etc/nginx/nginx.conf: client_max_body_size changed (content)")
    print("  live/production/web1/etc/systemd/system/shopfront.service: 0600, declared 0644 (mode)")
    print("  live/production/db1/etc/cron.d/pg-backup: declared but missing")
    print("deliberate lint findings:")
    print("  test/db-test1/backup/: application without README.md")
    print(
        "  files/etc/nginx/snippets/proxy-params.conf: identical in production/web1/nginx and test/web-test1/nginx"
    )
    print("manual machines: production/router1, internal/printer1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
