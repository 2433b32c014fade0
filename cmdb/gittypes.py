"""What :mod:`cmdb.gitrepo` returns and raises: plain dataclasses and the project's Git errors.

Kept apart so that the wrapper itself stays one readable module; import them from ``cmdb.gitrepo``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple


class GitError(Exception):
    """A Git operation failed; ``str(error)`` is a message fit for users."""


class RepositoryUnavailable(GitError):
    """The origin cannot be reached or the clone cannot be read."""


class UnknownRevision(GitError):
    """A revision that does not name a commit in the clone."""


class MergeConflict(GitError):
    """A merge that Git cannot do without a person; ``paths`` are the conflicting files."""

    def __init__(self, message: str, paths: list[str]):
        super().__init__(message)
        self.paths = paths


class PushRejected(GitError):
    """Origin refused a push (it moved meanwhile, or protects the branch)."""


class TreeEntry(NamedTuple):
    """One entry of ``git ls-tree`` (a tuple: listing 100,000 files builds 100,000 of them)."""

    path: str
    mode: str  # "100644", "100755", "120000" (symlink), "160000" (submodule), "040000" (tree)
    type: str  # "blob", "tree", "commit"
    sha: str
    size: int | None  # None for trees and submodules

    @property
    def is_symlink(self) -> bool:
        return self.mode == "120000"

    @property
    def is_executable(self) -> bool:
        return self.mode == "100755"


@dataclass(frozen=True, slots=True)
class CommitInfo:
    sha: str
    author_name: str
    author_email: str
    committed_at: datetime
    summary: str
    parents: tuple[str, ...] = ()

    @property
    def short_sha(self) -> str:
        return self.sha[:10]


@dataclass(frozen=True, slots=True)
class ChangedPath:
    status: str  # A, M, D, T (type change)
    path: str


@dataclass(frozen=True, slots=True)
class FileDiff:
    """The unified diff of one file between two revisions."""

    path: str
    old_path: str
    status: str
    patch: str
    is_binary: bool


@dataclass(frozen=True, slots=True)
class Revert:
    """A commit undoing one release: ``head`` is where the release took main, ``base`` main before it."""

    sha: str
    head: str
    base: str
    paths: tuple[str, ...]  # the files it changes, compared with the commit it was made on


@dataclass(frozen=True, slots=True)
class MergedText:
    """A three-way merge of one file: ``conflicts`` > 0 when both sides changed the same lines
    (then ``content`` holds the conflict markers)."""

    content: bytes
    conflicts: int


@dataclass(frozen=True, slots=True)
class TagRef:
    """A tag in the clone (fetched from origin), annotated or lightweight, and the commit it names."""

    name: str
    sha: str
    annotated: bool
    tagged_at: datetime | None
    tagger: str
    message: str


@dataclass(frozen=True, slots=True)
class CommitRefs:
    """The tags and origin branches naming a commit (``at``) and the origin branches containing it."""

    tags: tuple[str, ...]
    branches_at: tuple[str, ...]
    branches_containing: tuple[str, ...]
