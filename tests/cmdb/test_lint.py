"""Indexing never crashes on what real repositories contain; each oddity becomes a lint warning."""

from __future__ import annotations

import subprocess

import pytest

from cmdb import services
from cmdb.models import Artifact, ConfigItem, LintWarning

pytestmark = pytest.mark.django_db

PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"


def codes_at(path):
    return set(LintWarning.objects.filter(path=path).values_list("code", flat=True))


def sync(repo, message="change"):
    repo.commit(message)
    return services.repo_sync(trigger="test")


def test_missing_readme_at_every_level_is_flagged(work_repo):
    work_repo.write("prod/web1/nginx/files/etc/nginx/nginx.conf", "x\n")
    sync(work_repo)
    for path in ("", "prod", "prod/web1", "prod/web1/nginx"):
        assert "missing-readme" in codes_at(path), path
    assert ConfigItem.objects.get(path="prod/web1/nginx").warning_count == 1


def test_empty_readme_is_flagged(synced):
    synced.write("production/db1/README.md", "  \n\n")
    sync(synced)
    assert "empty-readme" in codes_at("production/db1/README.md")


def test_files_at_environment_level_other_than_readme_and_pictures_are_flagged(synced):
    synced.write("production/notes.txt", "misc\n")
    sync(synced)
    assert "stray-file" in codes_at("production/notes.txt")
    assert not codes_at("production/topology.svg")


def test_readme_not_in_utf8_is_decoded_with_replacement_and_flagged(synced):
    synced.write("production/db1/README.md", "# db1 caf\xe9 latin-1\n".encode("latin-1"))
    sync(synced)
    db1 = ConfigItem.objects.get(path="production/db1")
    assert "\ufffd" in db1.readme_markdown
    assert "readme-not-utf8" in codes_at("production/db1/README.md")


def test_symlinks_are_recorded_never_followed_and_outside_links_flagged(synced):
    synced.symlink("production/web1/nginx/files/etc/nginx/current.conf", "nginx.conf")
    synced.symlink("production/web1/nginx/files/etc/passwd", "/etc/passwd")
    synced.symlink("production/web1/nginx/escape", "../../../../..")
    sync(synced)
    inside = Artifact.objects.get(path="production/web1/nginx/files/etc/nginx/current.conf")
    assert inside.is_symlink and inside.symlink_target == "nginx.conf"
    assert "symlink" in codes_at(inside.path)
    assert "symlink-outside" in codes_at("production/web1/nginx/files/etc/passwd")
    assert "symlink-outside" in codes_at("production/web1/nginx/escape")


def test_directory_names_with_spaces_or_non_ascii_are_flagged_and_indexed(synced):
    synced.write("production/Mail Server/README.md", "# mail\n")
    synced.write("production/müller/README.md", "# müller\n")
    sync(synced)
    assert ConfigItem.objects.filter(path="production/Mail Server").exists()
    assert "bad-name" in codes_at("production/Mail Server")
    assert "bad-name" in codes_at("production/müller")


def test_large_and_binary_files_are_flagged(synced, settings):
    settings.CMDB_LARGE_FILE_BYTES = 2048
    synced.write("production/web1/nginx/big.log", "x" * 5000)
    synced.write("production/web1/nginx/blob.bin", b"\x00\x01\x02binary")
    sync(synced)
    assert "large-file" in codes_at("production/web1/nginx/big.log")
    blob = Artifact.objects.get(path="production/web1/nginx/blob.bin")
    assert blob.is_binary
    assert "binary-file" in codes_at(blob.path)


def test_plaintext_private_key_is_a_secret_and_an_error(synced):
    synced.write("production/web1/nginx/files/etc/ssl/server.pem", PRIVATE_KEY)
    sync(synced)
    art = Artifact.objects.get(path="production/web1/nginx/files/etc/ssl/server.pem")
    assert art.is_secret
    warning = LintWarning.objects.get(path=art.path, code="plaintext-secret")
    assert warning.severity == "error"


def test_same_content_in_two_cis_suggests_the_common_folder_one_level_up(synced):
    shared = "# shared snippet\n" * 10
    synced.write("production/web1/nginx/files/etc/nginx/snippets/ssl.conf", shared)
    synced.write("production/db1/postgresql/files/etc/ssl.conf", shared)
    sync(synced)
    warning = LintWarning.objects.get(path="production/web1/nginx/files/etc/nginx/snippets/ssl.conf")
    assert warning.code == "duplicate-artifact"
    assert "production/db1/postgresql" in warning.message
    assert "production/_common/" in warning.message


def test_duplicates_inside_common_are_not_flagged(synced):
    shared = "# shared\n" * 10
    synced.write("production/_common/a.conf", shared)
    synced.write("production/web1/nginx/a.conf", shared)
    sync(synced)
    assert not LintWarning.objects.filter(code="duplicate-artifact").exists()


def test_removing_one_copy_clears_the_duplicate_warning_incrementally(synced):
    shared = "# shared\n" * 10
    synced.write("production/web1/nginx/a.conf", shared)
    synced.write("test/web-test1/nginx/a.conf", shared)
    sync(synced)
    assert LintWarning.objects.filter(code="duplicate-artifact").count() == 2
    synced.remove("test/web-test1/nginx/a.conf")
    run = sync(synced)
    assert run.mode == "incremental"
    assert not LintWarning.objects.filter(code="duplicate-artifact").exists()
    assert ConfigItem.objects.get(path="production/web1/nginx").warning_count == 0


def test_submodule_entry_is_indexed_as_an_artifact_with_a_warning(synced):
    sha = synced.head()
    synced.git("update-index", "--add", "--cacheinfo", f"160000,{sha},production/web1/vendor-mod")
    synced.git("commit", "-qm", "Add a submodule entry")
    synced.push()
    services.repo_sync(trigger="test")
    assert "submodule" in codes_at("production/web1/vendor-mod")


def test_hidden_folders_are_not_configuration_items(synced):
    synced.write(".github/workflows/ci.yml", "on: push\n")
    sync(synced)
    assert not ConfigItem.objects.filter(path__startswith=".github").exists()
    assert not Artifact.objects.filter(path__startswith=".github").exists()


def test_empty_repository_branch_with_only_a_readme_indexes(work_repo):
    work_repo.write("README.md", "# Nothing yet\n")
    sync(work_repo)
    assert list(ConfigItem.objects.values_list("path", flat=True)) == [""]


def test_non_utf8_file_names_do_not_crash_indexing(synced):
    raw = synced.path / "production" / "web1" / "nginx"
    name = b"caf\xe9.conf"
    with open(bytes(raw) + b"/" + name, "wb") as fh:
        fh.write(b"x\n")
    subprocess.run(["git", "add", "-A"], cwd=synced.path, check=True)
    sync(synced)
    assert Artifact.objects.filter(path__startswith="production/web1/nginx/caf").exists()


def test_manifest_problems_are_lint_errors_on_the_ci_with_file_and_line(synced):
    synced.write("production/web1/nginx/manifest.toml", '[[file]]\npath = "etc/relative.conf"\nmode = "0640"\n')
    synced.write("production/web1/manifest.toml", '[machine]\ntransport = "telnet"\n')
    sync(synced, "bad manifests")

    [app] = LintWarning.objects.filter(code="manifest", path="production/web1/nginx/manifest.toml")
    assert (app.ci.path, app.severity) == ("production/web1/nginx", "error")
    assert app.message.startswith("line 2: ") and "absolute" in app.message
    [machine] = LintWarning.objects.filter(code="manifest", path="production/web1/manifest.toml")
    assert machine.ci.path == "production/web1" and "telnet" in machine.message
    assert ConfigItem.objects.get(path="production/web1/nginx").warning_count >= 1

    # Fixing the machine manifest in an incremental sync clears only its warning.
    synced.write("production/web1/manifest.toml", '[machine]\ntransport = "manual"\n')
    sync(synced, "fix machine manifest")
    assert list(LintWarning.objects.filter(code="manifest").values_list("path", flat=True)) == [
        "production/web1/nginx/manifest.toml"
    ]


def test_two_applications_declaring_one_target_is_a_lint_error(synced):
    synced.write("production/web1/tuning/README.md", "# tuning\n")
    synced.write("production/web1/tuning/files/etc/nginx/nginx.conf", "other\n")
    sync(synced, "second owner")
    [warning] = LintWarning.objects.filter(code="manifest")  # applications are read in name order
    assert "/etc/nginx/nginx.conf is also declared by production/web1/nginx" in warning.message
    assert warning.ci.path == "production/web1/tuning"


def test_a_source_removed_from_common_is_flagged_on_the_next_sync(synced):
    synced.write("production/_common/tls/chain.pem", "chain\n")
    synced.write("production/web1/nginx/manifest.toml",
                 '[[file]]\npath = "/etc/ssl/chain.pem"\nsource = "../../_common/tls/chain.pem"\n')
    sync(synced, "use a common file")
    assert not LintWarning.objects.filter(code="manifest").exists()
    synced.remove("production/_common/tls/chain.pem")
    sync(synced, "drop it")
    [warning] = LintWarning.objects.filter(code="manifest")
    assert "not a file in the repository" in warning.message
