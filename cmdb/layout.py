"""The repository layout convention: ``<environment>/<machine>/<application>/`` with ``_common/``.

Pure functions on repository paths; no Git, no database. A *CI directory* is the root, any
directory up to three levels deep, or a ``_common`` folder (whose subfolders are its artifacts).
Every file belongs to exactly one CI: the deepest CI directory above it.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from functools import lru_cache

COMMON = "_common"
README = "README.md"
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".bmp", ".ico"}

ROOT, ENVIRONMENT, MACHINE, APPLICATION, COMMON_KIND = "root", "environment", "machine", "application", "common"
KIND_BY_DEPTH = {0: ROOT, 1: ENVIRONMENT, 2: MACHINE, 3: APPLICATION}


@dataclass(frozen=True, slots=True)
class CIRef:
    path: str  # "" for the root, otherwise e.g. "production/web1/nginx" or "production/_common"
    kind: str

    @property
    def depth(self) -> int:
        return 0 if not self.path else self.path.count("/") + 1

    @property
    def name(self) -> str:
        return posixpath.basename(self.path) if self.path else "/"

    @property
    def parent_path(self) -> str | None:
        if not self.path:
            return None
        return posixpath.dirname(self.path)


def is_hidden(path: str) -> bool:
    """Dot-folders (``.git``, ``.github``…) are tooling, not configuration items."""
    return any(part.startswith(".") for part in path.split("/")[:-1])


def ci_for_dir(dir_path: str) -> CIRef | None:
    """The CI a directory is, or None when it is only a folder inside a CI."""
    if not dir_path:
        return CIRef("", ROOT)
    parts = dir_path.split("/")
    if any(p.startswith(".") for p in parts):
        return None
    for i, part in enumerate(parts):
        if part == COMMON and i < 3:
            return CIRef("/".join(parts[: i + 1]), COMMON_KIND) if i == len(parts) - 1 else None
    if len(parts) <= 3:
        return CIRef(dir_path, KIND_BY_DEPTH[len(parts)])
    return None


def owning_ci(file_path: str) -> CIRef | None:
    """The CI a file belongs to (None for files in hidden folders)."""
    return owner_of_dir(posixpath.dirname(file_path))


@lru_cache(maxsize=200_000)
def owner_of_dir(dir_path: str) -> CIRef | None:
    """The CI that owns the files directly inside ``dir_path`` (cached per folder)."""
    # Cached per folder: a repository has far fewer folders than files, and indexing asks per file.
    parts = dir_path.split("/") if dir_path else []
    if any(p.startswith(".") for p in parts):
        return None
    for i, part in enumerate(parts):
        if i >= 3:
            break
        if part == COMMON:
            return CIRef("/".join(parts[: i + 1]), COMMON_KIND)
    depth = min(len(parts), 3)
    return CIRef("/".join(parts[:depth]), KIND_BY_DEPTH[depth])


def ci_dirs_of(file_path: str) -> tuple[str, ...]:
    """Every CI directory a file sits in, from the root down (its owner last)."""
    return _ci_dirs_of_dir(posixpath.dirname(file_path))


@lru_cache(maxsize=200_000)
def _ci_dirs_of_dir(dir_path: str) -> tuple[str, ...]:
    owner = owner_of_dir(dir_path)
    if owner is None:
        return ()
    parts = owner.path.split("/") if owner.path else []
    return tuple("/".join(parts[:i]) for i in range(len(parts) + 1))


def is_readme(file_path: str) -> bool:
    """True for the README.md that documents a CI directory (not one deeper inside an artifact folder)."""
    if posixpath.basename(file_path) != README:
        return False
    owner = owning_ci(file_path)
    return owner is not None and posixpath.dirname(file_path) == owner.path


def is_image(file_path: str) -> bool:
    return posixpath.splitext(file_path)[1].lower() in IMAGE_EXTENSIONS


def relative_to_ci(file_path: str, ci_path: str) -> str:
    return file_path[len(ci_path) + 1 :] if ci_path else file_path


def safe_repo_path(raw: str) -> str | None:
    """Normalise a path from a URL; None for anything that escapes or is not a plain relative path.

    A backslash is an ordinary character in a Git name (paths are looked up in Git trees, never on
    the portal's disk), so a file called ``back\\slash.conf`` opens like any other."""
    if raw is None or "\0" in raw:
        return None
    raw = raw.strip("/")
    if not raw:
        return ""
    parts = raw.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None
    return raw
