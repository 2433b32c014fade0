"""The one test of a normalised absolute path agrees with its definition on every short path."""

from __future__ import annotations

import itertools

from fleet.manifest import check_target
from fleet.paths import is_normalised_absolute
from fleet.transport.base import check_path


def by_definition(path: str) -> bool:
    """Absolute, not "/", no NUL, and no part of the path is "", "." or ".."."""
    if not path.startswith("/") or path == "/" or "\0" in path:
        return False
    return not any(part in ("", ".", "..") for part in path[1:].split("/"))


def test_every_path_of_up_to_seven_characters_is_judged_as_the_definition_says():
    for length in range(8):
        for chars in itertools.product("/.a\0", repeat=length):
            path = "".join(chars)
            assert is_normalised_absolute(path) == by_definition(path), repr(path)


def test_targets_and_machine_paths_use_it():
    for path in ("/etc/x.conf", "/etc/../x", "/etc//x", "/etc/./x", "/etc/", "/etc/..", "relative", "/"):
        assert (check_path(path) is None) == by_definition(path), path
        assert (check_target(path) is None) == by_definition(path), path
