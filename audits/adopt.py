"""Adopt live as a patch: turn only a machine's live edit into a branch, merged onto main as it is now."""

from __future__ import annotations

import logging

from django.conf import settings

from audits.errors import AuditConflict, AuditError
from audits.models import Finding
from cmdb import services as cmdb_services
from cmdb.gitrepo import GitError
from cmdb.secrets import mask_text
from fleet import look
from fleet.declared import declared_configuration
from fleet.transport import TransportError

log = logging.getLogger(__name__)
Kind = Finding.Kind


def adopted_files(finding: Finding) -> tuple[str, dict[str, tuple[bytes, str]]]:
    """What to commit for an adopt, and on which commit of main: only the live edit. The difference
    between what was declared at the audit's commit and what is live (read again now, refused if it
    moved since the audit) is merged onto main as it is now; main's own changes since are kept, and
    when main changed the same lines the adopt is refused with them, never reverting a release."""
    refusal = finding.adopt_refusal
    if refusal:
        raise AuditError(refusal)
    repo = cmdb_services.get_repo()
    try:
        repo.fetch(settings.CMDB_BRANCH)
    except GitError as exc:
        log.warning("adopt: cannot fetch origin, merging onto the clone's %s: %s", settings.CMDB_BRANCH, exc)
    main = repo.origin_head(settings.CMDB_BRANCH)
    audited = repo.entry(finding.run.main_sha, finding.source_path) if finding.source_path else None
    if audited is None or audited.type != "blob" or audited.is_symlink:
        raise AuditError(f"{finding.source_path or finding.target} is not a regular file in the repository.")
    now = repo.entry(main, finding.source_path)
    if now is None or now.type != "blob" or now.is_symlink:
        raise AuditConflict(f"{finding.source_path} was removed or renamed on {settings.CMDB_BRANCH} since audit "
                            f"#{finding.run_id}: adopt by hand in a branch.")
    if finding.kind == Kind.MODE:
        if now.mode != audited.mode:
            raise AuditConflict(f"{settings.CMDB_BRANCH} changed the mode of {finding.source_path} since audit "
                                f"#{finding.run_id}: run the audit again.")
        return main, {finding.source_path: (repo.read_blob(now.sha), "100755" if finding.live == "0755" else "100644")}
    declared = declared_configuration(repo, finding.run.main_sha, machines=[finding.machine_path],
                                      local_root_base=settings.CMDB_LOCAL_ROOT_BASE).get(finding.machine_path)
    if declared is None or declared.errors:
        raise AuditError(f"{finding.machine_path} has no usable declaration on {finding.run.main_sha[:10]}.")
    result = look.read_live(declared.access, [finding.target], ssh_settings=look.ssh_settings_from(settings))
    if isinstance(result, TransportError):
        raise AuditConflict(f"Cannot read {finding.target} on {finding.machine_path}: {result.message}")
    live = result.files.get(finding.target)
    content = result.contents.get(finding.target)
    if live is None or content is None or live.sha256 != finding.live_sha256:
        raise AuditConflict(f"{finding.target} on {finding.machine_path} changed since audit #{finding.run_id} "
                            "(or cannot be read): run the audit again before adopting it.")
    if now.sha == audited.sha:
        return main, {finding.source_path: (content, now.mode)}  # main did not touch it: the live file is it
    try:
        merged = repo.merge_file(repo.read_blob(audited.sha), repo.read_blob(now.sha), content,
                                 labels=(settings.CMDB_BRANCH, f"audit #{finding.run_id}", "live"))
    except GitError as exc:
        raise AuditConflict(f"{finding.source_path} changed on {settings.CMDB_BRANCH} since audit "
                            f"#{finding.run_id} and cannot be merged with the live edit: {exc}") from exc
    if merged.conflicts:
        excerpt = _conflict_excerpt(merged.content.decode("utf-8", "replace"))
        raise AuditConflict(f"{settings.CMDB_BRANCH} changed the same lines of {finding.source_path} since audit "
                            f"#{finding.run_id} (a later release); adopting would revert it. Conflicting lines:\n"
                            + mask_text(excerpt))
    return main, {finding.source_path: (merged.content, now.mode)}


def _conflict_excerpt(text: str, limit: int = 40) -> str:
    """The conflict blocks of a merge result (markers included), at most ``limit`` lines."""
    out, inside = [], False
    for line in text.splitlines():
        if line.startswith("<<<<<<<"):
            inside = True
        if inside:
            out.append(line)
        if line.startswith(">>>>>>>"):
            inside = False
    return "\n".join(out[:limit]) + ("\n..." if len(out) > limit else "")
