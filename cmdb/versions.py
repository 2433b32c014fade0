"""Named versions of the repository: its tags and branches, as the clone last fetched them from origin.

Baselines made in the portal are tags too, but tags pushed by hand or by another tool are versions
as well: the Baselines page, search, commit pages and every revision picker read them here, live
from the clone (a sync fetches tags with branches and drops those deleted on origin). Every reader
degrades to "none" when Git cannot be read, so a broken clone never turns a page into an error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fnmatch import fnmatchcase

from django.conf import settings

from cmdb import services
from cmdb.gitrepo import CommitRefs, ConfigRepo, GitError, TagRef

log = logging.getLogger(__name__)

RECENT_COMMITS = 15
MAX_TAG_HITS = 20


@dataclass(frozen=True, slots=True)
class RevChoice:
    value: str  # what the revision box receives
    label: str  # what the picker shows next to it


def all_tags() -> list[TagRef]:
    """Every tag naming a commit, newest first ([] when the clone cannot be read)."""
    try:
        return services.get_repo().tag_refs()
    except GitError as exc:
        log.warning("cannot list tags: %s", exc)
        return []


def baseline_tags(tags: list[TagRef] | None = None) -> list[TagRef]:
    """The tags ``CMDB_BASELINE_TAG_PATTERN`` counts as baselines."""
    pattern = settings.CMDB_BASELINE_TAG_PATTERN
    return [t for t in (all_tags() if tags is None else tags) if fnmatchcase(t.name, pattern)]


def search_tags(query: str, *, limit: int = MAX_TAG_HITS) -> list[TagRef]:
    """Tags whose name holds every word of ``query`` (case-insensitive), newest first."""
    words = [w.lower() for w in query.split() if w]
    if not words:
        return []
    return [t for t in all_tags() if all(w in t.name.lower() for w in words)][:limit]


def commit_refs(sha: str) -> CommitRefs:
    try:
        return services.get_repo().refs_of(sha)
    except GitError as exc:
        log.warning("cannot list the refs of %s: %s", sha[:12], exc)
        return CommitRefs((), (), ())


def rev_choices(*, recent: int = RECENT_COMMITS) -> list[RevChoice]:
    """What a revision picker offers: origin's branches, the tags, then the latest commits of the indexed branch."""
    try:
        repo = services.get_repo()
        # On every page with a revision box: asked of Git once per process while the refs stay put.
        return list(repo.while_refs_unchanged(("rev-choices", recent), lambda: _rev_choices_now(repo, recent)))
    except GitError as exc:
        log.warning("cannot list revisions: %s", exc)
        return []


def _rev_choices_now(repo: ConfigRepo, recent: int) -> tuple[RevChoice, ...]:
    head = services.main_sha(repo)  # from Git, not the index: pickers add no query to a page
    commits = repo.log(head, max_count=recent) if head else []
    return (
        *(RevChoice(b, "branch") for b in repo.branches()),
        *(RevChoice(t.name, "tag") for t in repo.tag_refs()),
        *(RevChoice(c.sha[:12], f"{c.committed_at:%Y-%m-%d} {c.summary[:60]}") for c in commits),
    )
