"""The layout convention as pure path rules."""

import pytest

from cmdb import layout


@pytest.mark.parametrize(
    "file_path, owner, kind",
    [
        ("README.md", "", "root"),
        ("production/README.md", "production", "environment"),
        ("production/web1/notes.txt", "production/web1", "machine"),
        ("production/web1/nginx/files/etc/nginx/nginx.conf", "production/web1/nginx", "application"),
        ("production/_common/tls/cert.pem", "production/_common", "common"),
        ("_common/ca/root.pem", "_common", "common"),
        ("production/web1/_common/x/y/z", "production/web1/_common", "common"),
        ("production/web1/nginx/_common/a", "production/web1/nginx", "application"),
    ],
)
def test_every_file_belongs_to_the_deepest_ci_above_it(file_path, owner, kind):
    ref = layout.owning_ci(file_path)
    assert (ref.path, ref.kind) == (owner, kind)


def test_hidden_folders_belong_to_no_ci():
    assert layout.owning_ci(".github/workflows/x.yml") is None
    assert layout.ci_for_dir("production/.git") is None


def test_ci_dirs_of_lists_the_chain_from_the_root():
    assert layout.ci_dirs_of("production/web1/nginx/files/a") == ("", "production", "production/web1", "production/web1/nginx")


@pytest.mark.parametrize("raw", ["..", "a/../b", "/etc/passwd", "a//b", "a/./b", "a\0b"])
def test_unsafe_paths_are_refused(raw):
    expected_none = raw != "/etc/passwd"
    result = layout.safe_repo_path(raw)
    # a leading slash is stripped (URLs always start with one), everything else that escapes is refused
    assert (result is None) if expected_none else result == "etc/passwd"


def test_a_backslash_is_an_ordinary_character_of_a_git_name():
    # Paths are looked up in Git trees, never on disk: "a\\b" is one file name, not a/b.
    assert layout.safe_repo_path("a\\b") == "a\\b"
