"""What the repository declares per machine: files/ trees, manifests, access, and every manifest error."""

from __future__ import annotations

import subprocess

import pytest

from cmdb.gitrepo import ConfigRepo
from cmdb.secrets import SecretPatterns
from fleet.declared import declared_bytes, declared_configuration, manifest_errors
from fleet.manifest import DeclaredFile, MachineAccess, ManifestError
from tests.gitutil import WorkRepo, write_standard_layout

NGINX = "production/web1/nginx"


@pytest.fixture
def work(tmp_path) -> WorkRepo:
    return WorkRepo(tmp_path / "git")


def declare(work: WorkRepo, **kwargs):
    sha = work.commit("change", push=False)
    return declared_configuration(ConfigRepo(work.path), sha, **kwargs)


def blob_sha(work: WorkRepo, path: str) -> str:
    return work.git("rev-parse", f"HEAD:{path}").strip()


def errors_of(decls) -> list[ManifestError]:
    return [e for d in decls.values() for e in d.errors]


# --- files/ trees ------------------------------------------------------------------------------------------
def test_files_tree_declares_targets_with_git_modes(work):
    write_standard_layout(work)
    work.write(f"{NGINX}/files/usr/local/bin/reload-nginx", "#!/bin/sh\nnginx -s reload\n", mode=0o755)
    decls = declare(work)

    assert list(decls) == ["production/db1", "production/web1", "test/web-test1"]  # no _common machines
    web1 = decls["production/web1"]
    assert web1.ok and web1.environment == "production" and web1.name == "web1"
    assert web1.access == MachineAccess("manual")
    assert list(web1.files) == ["/etc/nginx/nginx.conf", "/usr/local/bin/reload-nginx"]
    conf = web1.files["/etc/nginx/nginx.conf"]
    assert conf == DeclaredFile(
        target="/etc/nginx/nginx.conf",
        source_path=f"{NGINX}/files/etc/nginx/nginx.conf",
        blob_sha=blob_sha(work, f"{NGINX}/files/etc/nginx/nginx.conf"),
        size=len("worker_processes 4;\nevents { worker_connections 1024; }\n"),
        mode=0o644,
        owner=None,
        group=None,
        secret=False,
        app_path=NGINX,
    )
    assert web1.files["/usr/local/bin/reload-nginx"].mode == 0o755
    assert web1.reload == {}
    # secrets/htpasswd sits outside files/: it documents, it is not deployed
    assert all("secrets" not in f.source_path for f in web1.files.values())
    assert decls["production/db1"].files["/etc/postgresql/postgresql.conf"].app_path == "production/db1/postgresql"


def test_declared_bytes_reads_every_blob_of_every_machine_at_once(work):
    write_standard_layout(work)
    decls = declare(work)
    repo = ConfigRepo(work.path)
    calls = []
    original = repo.read_blobs
    repo.read_blobs = lambda shas: calls.append(list(shas)) or original(calls[-1])  # type: ignore[method-assign]
    contents = declared_bytes(repo, [decls["production/web1"], decls["production/db1"]])
    assert contents["production/web1"] == {
        "/etc/nginx/nginx.conf": b"worker_processes 4;\nevents { worker_connections 1024; }\n"}
    assert contents["production/db1"] == {"/etc/postgresql/postgresql.conf": b"shared_buffers = 1GB\n"}
    assert len(calls) == 1


def test_symlink_in_files_is_declared_as_a_symlink(work):
    work.write(f"{NGINX}/files/etc/nginx/sites-available/default", "server {}\n")
    work.symlink(f"{NGINX}/files/etc/nginx/sites-enabled/default", "../sites-available/default")
    decl = declare(work)["production/web1"]
    link = decl.files["/etc/nginx/sites-enabled/default"]
    assert link.kind == "symlink" and link.mode == 0o777
    assert declared_bytes(ConfigRepo(work.path), [decl])["production/web1"][link.target] == b"../sites-available/default"


# --- application manifests ---------------------------------------------------------------------------------
def test_manifest_overrides_mode_owner_group_and_lists_reload_commands(work):
    write_standard_layout(work)
    work.write(f"{NGINX}/files/usr/local/bin/tool", "#!/bin/sh\n", mode=0o755)
    work.write(
        f"{NGINX}/manifest.toml",
        """
[[file]]
path = "/etc/nginx/nginx.conf"
mode = "0640"
owner = "root"
group = "www-data"

[[file]]
path = "/usr/local/bin/tool"
group = "adm"

[deploy]
reload = ["nginx -t", "systemctl reload nginx"]
""",
    )
    decl = declare(work)["production/web1"]
    assert decl.ok, decl.errors
    conf = decl.files["/etc/nginx/nginx.conf"]
    assert (conf.mode, conf.owner, conf.group) == (0o640, "root", "www-data")
    tool = decl.files["/usr/local/bin/tool"]
    assert (tool.mode, tool.owner, tool.group) == (0o755, None, "adm")  # mode still from Git
    assert decl.reload == {NGINX: ["nginx -t", "systemctl reload nginx"]}


def test_source_from_common_with_secret_flag(work):
    write_standard_layout(work)
    work.write(
        f"{NGINX}/manifest.toml",
        '[[file]]\npath = "/etc/ssl/fullchain.pem"\nsource = "../../_common/tls/fullchain.pem"\n'
        'secret = true\nmode = "0600"\n',
    )
    decl = declare(work)["production/web1"]
    assert decl.ok, decl.errors
    pem = decl.files["/etc/ssl/fullchain.pem"]
    assert pem.source_path == "production/_common/tls/fullchain.pem"
    assert pem.blob_sha == blob_sha(work, "production/_common/tls/fullchain.pem")
    assert (pem.secret, pem.mode, pem.app_path) == (True, 0o600, NGINX)
    assert not decl.files["/etc/nginx/nginx.conf"].secret
    content = declared_bytes(ConfigRepo(work.path), [decl])["production/web1"]
    assert content["/etc/ssl/fullchain.pem"].startswith(b"-----BEGIN CERTIFICATE-----")


def test_secret_by_name_and_by_cmdb_secrets_patterns(work):
    write_standard_layout(work)  # .cmdb-secrets lists **/secrets/** and *.vault
    work.write(f"{NGINX}/files/etc/ssl/private/web1.key", "key\n")
    work.write(f"{NGINX}/files/etc/app/db.vault", "vault\n")
    work.write(f"{NGINX}/files/etc/app/plain.conf", "x\n")
    work.write(f"{NGINX}/manifest.toml", '[[file]]\npath = "/etc/app/htpasswd"\nsource = "secrets/htpasswd"\n')
    decl = declare(work)["production/web1"]
    assert decl.ok, decl.errors
    secret = {t: f.secret for t, f in decl.files.items()}
    assert secret == {
        "/etc/app/db.vault": True,
        "/etc/app/htpasswd": True,
        "/etc/app/plain.conf": False,
        "/etc/nginx/nginx.conf": False,
        "/etc/ssl/private/web1.key": True,
    }
    # Patterns passed in replace .cmdb-secrets
    repo = ConfigRepo(work.path)
    decl = declared_configuration(repo, work.head(), secret_patterns=SecretPatterns("**/plain.conf\n"))["production/web1"]
    assert decl.files["/etc/app/plain.conf"].secret and not decl.files["/etc/app/db.vault"].secret


# --- machine manifests -------------------------------------------------------------------------------------
def test_machine_manifest_transports(work, tmp_path):
    for machine in ("ssh1", "local1", "local2", "manual1", "plain"):
        work.write(f"prod/{machine}/app/files/etc/motd", f"{machine}\n")
    work.write("prod/ssh1/manifest.toml", '[machine]\ntransport = "ssh"\nhost = "10.0.0.5"\nport = 2222\nuser = "deploy"\n')
    work.write("prod/local1/manifest.toml", f'[machine]\ntransport = "local"\nroot = "{tmp_path}/out/abs/local1"\n')
    work.write("prod/local2/manifest.toml", '[machine]\ntransport = "local"\nroot = "live/prod/local2"\n')
    work.write("prod/manual1/manifest.toml", '[machine]\ntransport = "manual"\n')
    decls = declare(work, local_root_base=tmp_path / "out")

    assert not errors_of(decls)
    assert decls["prod/ssh1"].access == MachineAccess("ssh", host="10.0.0.5", port=2222, user="deploy")
    assert decls["prod/local1"].access == MachineAccess("local", root=tmp_path / "out" / "abs/local1")
    assert decls["prod/local2"].access == MachineAccess("local", root=tmp_path / "out" / "live/prod/local2")
    assert decls["prod/manual1"].access.transport == "manual"
    assert decls["prod/plain"].access == MachineAccess("manual")  # no manifest: manual


def test_machine_manifest_defaults_and_errors(work):
    work.write("prod/a/app/files/etc/x", "x")
    work.write("prod/a/manifest.toml", '[machine]\ntransport = "ssh"\nhost = "a.example.org"\n')
    work.write("prod/b/app/files/etc/x", "x")
    work.write("prod/b/manifest.toml", '# b\n[machine]\ntransport = "telnet"\n')
    work.write("prod/c/app/files/etc/x", "x")
    work.write("prod/c/manifest.toml", '[machine]\ntransport = "ssh"\nhost = "c"\nport = "22"\n')
    work.write("prod/d/app/files/etc/x", "x")
    work.write("prod/d/manifest.toml", '[machine]\ntransport = "local"\nroot = "live/d"\n')
    work.write("prod/e/app/files/etc/x", "x")
    work.write("prod/e/manifest.toml", '[machine]\ntransport = "ssh"\n')
    work.write("prod/f/app/files/etc/x", "x")
    work.write("prod/f/manifest.toml", '[machine]\ntransport = "local"\nroot = "../../etc"\n')
    decls = declare(work)  # no local_root_base

    assert decls["prod/a"].access == MachineAccess("ssh", host="a.example.org", port=22, user=None)
    assert decls["prod/b"].errors == [
        ManifestError("prod/b/manifest.toml", 3, 'unknown transport \'telnet\' (use "ssh", "local" or "manual")')
    ]
    assert decls["prod/b"].access.transport == "manual" and not decls["prod/b"].ok
    assert decls["prod/c"].errors == [
        ManifestError("prod/c/manifest.toml", 4, "port must be an integer from 1 to 65535, not a string")
    ]
    [d_error] = decls["prod/d"].errors
    assert (d_error.line, "CMDB_LOCAL_ROOT_BASE" in d_error.message) == (3, True)
    assert decls["prod/e"].errors == [ManifestError("prod/e/manifest.toml", 2, 'transport "ssh" needs a host')]
    assert [e.line for e in decls["prod/f"].errors] == [3]


def test_absolute_local_root_must_stay_under_the_base(work, tmp_path):
    work.write("prod/a/app/files/etc/x", "x")
    work.write("prod/a/manifest.toml", '[machine]\ntransport = "local"\nroot = "/etc"\n')
    work.write("prod/b/app/files/etc/x", "x")
    work.write("prod/b/manifest.toml", f'[machine]\ntransport = "local"\nroot = "{tmp_path}/base/../elsewhere"\n')
    decls = declare(work, local_root_base=tmp_path / "base")

    [a_error] = decls["prod/a"].errors
    assert (a_error.line, "outside" in a_error.message) == (3, True)
    assert decls["prod/a"].access.transport == "manual" and not decls["prod/a"].ok
    [b_error] = decls["prod/b"].errors  # ".." is normalised before the check
    assert "outside" in b_error.message


# --- manifest errors ---------------------------------------------------------------------------------------
def test_toml_syntax_error_reports_the_line(work):
    work.write(f"{NGINX}/files/etc/nginx/nginx.conf", "x")
    work.write(f"{NGINX}/manifest.toml", '[[file]]\npath = "/etc/nginx/nginx.conf"\nmode = \n')
    decl = declare(work)["production/web1"]
    [error] = decl.errors
    assert (error.path, error.line) == (f"{NGINX}/manifest.toml", 3)
    assert error.message.startswith("invalid TOML: ")
    assert "/etc/nginx/nginx.conf" in decl.files  # the files/ entry is still listed, but the machine is not ok
    assert not decl.ok
    assert str(error).startswith(f"{NGINX}/manifest.toml:3: invalid TOML")


def test_wrong_types_and_unknown_keys_report_their_lines(work):
    work.write(f"{NGINX}/files/etc/a", "a")
    work.write(f"{NGINX}/files/etc/b", "b")
    work.write(
        f"{NGINX}/manifest.toml",
        """[[file]]
path = "/etc/a"
mode = 644

[[file]]
path = "/etc/b"
owner = 0
secret = "yes"
onwer = "root"

[deploy]
reload = "systemctl reload nginx"

[machine]
transport = "ssh"
""",
    )
    errors = declare(work)["production/web1"].errors
    got = {(e.line, e.message) for e in errors}
    assert got == {
        (3, 'mode must be an octal string such as "0640", not an integer'),
        (7, "owner must be a user or group name, not an integer"),
        (8, "secret must be true or false, not a string"),
        (9, "unknown key 'onwer' in [[file]]"),
        (12, "[deploy] reload must be an array of non-empty strings"),
        (14, "unknown table or key 'machine' (machine settings go in production/web1/manifest.toml)"),
    }
    assert all(e.path == f"{NGINX}/manifest.toml" for e in errors)


def test_source_outside_the_repository_and_bad_targets(work):
    work.write(f"{NGINX}/files/etc/nginx/nginx.conf", "x")
    work.write(
        f"{NGINX}/manifest.toml",
        """[[file]]
path = "/etc/passwd"
source = "../../../../etc/passwd"

[[file]]
path = "etc/relative.conf"
source = "files/etc/nginx/nginx.conf"

[[file]]
path = "/etc/nginx/../shadow"
source = "files/etc/nginx/nginx.conf"

[[file]]
path = "/etc/missing.conf"
source = "../../_common/nothing.pem"

[[file]]
path = "/etc/undeclared.conf"
mode = "0600"

[[file]]
path = "/etc/abs.conf"
source = "/etc/hostname"
""",
    )
    decl = declare(work)["production/web1"]
    got = sorted((e.line, e.message) for e in decl.errors)
    assert got == [
        (3, "source '../../../../etc/passwd' points outside the repository"),
        (6, "target path 'etc/relative.conf' is not absolute"),
        (10, "target path '/etc/nginx/../shadow' must be a normalised absolute path (no '..', '.', '//' or trailing '/')"),
        (14, "source production/_common/nothing.pem is not a file in the repository"),
        (18, "/etc/undeclared.conf has no files/etc/undeclared.conf and no source"),
        (23, "source '/etc/hostname' must be relative to the application directory"),
    ]
    assert list(decl.files) == ["/etc/nginx/nginx.conf"]  # nothing guessed


def test_two_applications_declaring_the_same_target(work):
    work.write("production/web1/nginx/files/etc/logrotate.d/web", "nginx\n")
    work.write("production/web1/php/files/etc/logrotate.d/web", "php\n")
    work.write("production/web1/php/files/etc/php.ini", "x\n")
    work.write("production/web1/zz/manifest.toml", '[[file]]\npath = "/etc/php.ini"\nsource = "../php/files/etc/php.ini"\n')
    decl = declare(work)["production/web1"]
    assert decl.errors == [
        ManifestError("production/web1/php/files/etc/logrotate.d/web", None,
                      "/etc/logrotate.d/web is also declared by production/web1/nginx"),
        ManifestError("production/web1/zz/manifest.toml", 2, "/etc/php.ini is also declared by production/web1/php"),
    ]
    assert decl.files["/etc/logrotate.d/web"].app_path == "production/web1/nginx"


def test_duplicate_within_one_manifest_and_source_shadowing_files(work):
    work.write(f"{NGINX}/files/etc/nginx/nginx.conf", "x")
    work.write("production/_common/nginx.conf", "y")
    work.write(
        f"{NGINX}/manifest.toml",
        '[[file]]\npath = "/etc/nginx/nginx.conf"\nsource = "../../_common/nginx.conf"\n'
        '[[file]]\npath = "/etc/x"\nsource = "../../_common/nginx.conf"\n'
        '[[file]]\npath = "/etc/x"\nsource = "../../_common/nginx.conf"\n',
    )
    errors = declare(work)["production/web1"].errors
    assert sorted((e.line, e.message) for e in errors) == [
        (2, f"/etc/nginx/nginx.conf has both a source and {NGINX}/files/etc/nginx/nginx.conf"),
        (8, "/etc/x is declared twice in this manifest"),
    ]


def test_manifest_errors_lists_everything_sorted(work):
    write_standard_layout(work)
    work.write(f"{NGINX}/manifest.toml", "[[file]\n")
    work.write("production/db1/manifest.toml", '[machine]\ntransport = "carrier-pigeon"\n')
    work.write("test/web-test1/nginx/manifest.toml", '[[file]]\npath = "relative"\n')
    work.commit("broken manifests", push=False)
    errors = manifest_errors(ConfigRepo(work.path), "HEAD")
    assert [(e.path, e.line) for e in errors] == [
        ("production/db1/manifest.toml", 2),
        (f"{NGINX}/manifest.toml", 1),
        ("test/web-test1/nginx/manifest.toml", 2),
    ]


# --- efficiency --------------------------------------------------------------------------------------------
def test_one_listing_and_one_blob_read_for_the_machines_asked(work):
    write_standard_layout(work)
    work.write(f"{NGINX}/manifest.toml", '[[file]]\npath = "/etc/ssl/chain.pem"\nsource = "../../_common/tls/fullchain.pem"\n')
    work.write("production/web1/manifest.toml", '[machine]\ntransport = "ssh"\nhost = "web1"\n')
    sha = work.commit("manifests", push=False)
    repo = ConfigRepo(work.path)
    calls: dict[str, int] = {"ls_tree": 0, "read_blobs": 0}

    def counting(name):
        original = getattr(repo, name)

        def wrapper(*args, **kwargs):
            calls[name] += 1
            return original(*args, **kwargs)

        return wrapper

    for name in calls:
        setattr(repo, name, counting(name))
    only = declared_configuration(repo, sha, machines=["production/web1"])
    assert list(only) == ["production/web1"] and only["production/web1"].ok
    assert only["production/web1"].files["/etc/ssl/chain.pem"].source_path == "production/_common/tls/fullchain.pem"
    assert only["production/web1"].access.host == "web1"
    assert calls == {"ls_tree": 1, "read_blobs": 1}

    calls.update(ls_tree=0, read_blobs=0)
    some = declared_configuration(repo, sha, machines=["production/web1", "test/web-test1", "nowhere/gone"])
    assert list(some) == ["production/web1", "test/web-test1"]
    assert some["production/web1"] == only["production/web1"]
    assert calls == {"ls_tree": 1, "read_blobs": 1}


def test_declaration_at_an_older_revision(work):
    write_standard_layout(work)
    first = work.commit("first", push=False)
    work.write(f"{NGINX}/files/etc/nginx/conf.d/new.conf", "new\n")
    work.commit("second", push=False)
    repo = ConfigRepo(work.path)
    assert "/etc/nginx/conf.d/new.conf" not in declared_configuration(repo, first)["production/web1"].files
    assert "/etc/nginx/conf.d/new.conf" in declared_configuration(repo, "main")["production/web1"].files


def test_git_blob_sha_matches_git_hash_object(work):
    work.write(f"{NGINX}/files/etc/x", "content\n")
    decl = declare(work)["production/web1"]
    expected = subprocess.run(["git", "hash-object", "--stdin"], input=b"content\n", capture_output=True, check=True)
    assert decl.files["/etc/x"].blob_sha == expected.stdout.decode().strip()
