"""A change request's diff against its merge base, per CI, with secrets masked unless allowed."""

from __future__ import annotations

from dataclasses import dataclass

from changes.models import ChangeRequest
from cmdb import layout
from cmdb import services as cmdb_services
from cmdb.gitrepo import FileDiff, GitError
from cmdb.indexer import secret_patterns
from cmdb.secrets import MASK, SecretPatterns, has_private_key, is_secret, mask_text


@dataclass
class CIDiff:
    ci_path: str
    files: list[FileDiff]


def change_diff(change: ChangeRequest, *, can_view_secrets: bool) -> list[CIDiff]:
    """The branch's diff against the merge base, grouped by CI, secrets masked unless allowed."""
    if not change.base_sha or not change.head_sha:
        return []
    repo = cmdb_services.get_repo()
    try:
        diffs = repo.diff(change.base_sha, change.head_sha)
    except GitError:
        return []
    patterns = None if can_view_secrets else secret_patterns(repo, change.base_sha, change.head_sha)
    grouped: dict[str, list[FileDiff]] = {}
    for diff in diffs:
        owner = layout.owning_ci(diff.path)
        key = owner.path if owner else ""
        if patterns is not None:
            diff = mask_diff(diff, patterns)
        grouped.setdefault(key, []).append(diff)
    return [CIDiff(path, files) for path, files in sorted(grouped.items())]


def mask_diff(diff: FileDiff, patterns: SecretPatterns) -> FileDiff:
    """The diff with its body replaced by the mask for secret files, and key blocks masked elsewhere."""
    if is_secret(diff.path, None, patterns) or has_private_key(diff.patch.encode()):
        header = "\n".join(line for line in diff.patch.splitlines() if line.startswith(("diff --git", "---", "+++")))
        return FileDiff(diff.path, diff.old_path, diff.status, f"{header}\n{MASK}", diff.is_binary)
    return FileDiff(diff.path, diff.old_path, diff.status, mask_text(diff.patch), diff.is_binary)
