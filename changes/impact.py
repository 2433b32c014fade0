"""What a change request touches: the changed files, the CIs they belong to, and the approvals needed.

Pure reads of Git and a few rows; ``changes.services`` stores the result on the change request.
"""

from __future__ import annotations

import posixpath

from changes.models import ApprovalPolicy
from cmdb import layout
from cmdb.gitrepo import ConfigRepo
from cmdb.models import ConfigItem


def compute_impact(repo: ConfigRepo, base: str, head: str) -> dict:
    """Files changed between the merge base and the branch head, the CIs they belong to, and the
    CIs one level below every changed ``_common`` folder (they depend on it)."""
    changes = repo.changed_paths(base, head)
    files = []
    cis: dict[str, dict] = {}

    def add(ci: layout.CIRef, reason: str, via: str = "") -> None:
        if ci.path in cis and cis[ci.path]["reason"] == "direct":
            return
        parts = ci.path.split("/") if ci.path else []
        env = parts[0] if parts and parts[0] != layout.COMMON else ""
        machine = "/".join(parts[:2]) if len(parts) >= 2 and parts[1] != layout.COMMON else ""
        cis[ci.path] = {"path": ci.path, "kind": ci.kind, "environment": env, "machine_path": machine,
                        "reason": reason, "via": via}

    commons: set[str] = set()
    for change in changes:
        owner = layout.owning_ci(change.path)
        files.append({"path": change.path, "status": change.status, "ci": owner.path if owner else None})
        if owner is None:
            continue
        add(owner, "direct")
        if owner.kind == layout.COMMON_KIND:
            commons.add(owner.path)
    for common in sorted(commons):
        parent = posixpath.dirname(common)
        for entry in repo.ls_tree(head, parent, recursive=False) if parent else repo.ls_tree(head, recursive=False):
            ref = layout.ci_for_dir(entry.path) if entry.type == "tree" else None
            if ref is not None and ref.kind != layout.COMMON_KIND:
                add(ref, "common", via=common)
    # A top-level _common folder is shared by every environment: its environments are impacted.
    return {"base": base, "head": head, "files": files, "cis": sorted(cis.values(), key=lambda c: c["path"])}


def environments_of(impact: dict) -> list[str]:
    envs = {c["environment"] for c in impact.get("cis", []) if c["environment"]}
    return sorted(envs)


def touches_root(impact: dict) -> bool:
    """A changed file that belongs to no environment: the root README, the root ``_common/``,
    ``.cmdb-secrets`` and other top-level files. They shape every environment."""
    for f in impact.get("files", []):
        ref = layout.ci_for_dir(f["ci"]) if f.get("ci") else None
        if ref is None or ref.kind == layout.ROOT or (ref.kind == layout.COMMON_KIND and "/" not in ref.path):
            return True
    return False


def known_environments() -> set[str]:
    return set(ConfigItem.objects.filter(kind=layout.ENVIRONMENT).values_list("path", flat=True))


def required_approvals(impact: dict) -> int:
    """The strictest policy of the environments the change touches; of every environment when it
    touches root-level files (one approval would otherwise release a change to all of them)."""
    envs = set(environments_of(impact))
    if touches_root(impact):
        envs |= known_environments() | set(ApprovalPolicy.objects.values_list("environment", flat=True))
    return ApprovalPolicy.required_for(sorted(envs))


def with_redeploy(impact: dict, redeploy: list[str]) -> dict:
    """``impact`` plus the CIs named for re-deployment (kept across branch moves)."""
    cis = {c["path"]: c for c in impact["cis"]}
    for path in redeploy:
        if path in cis:
            continue
        ref = layout.ci_for_dir(path)
        parts = path.split("/")
        cis[path] = {"path": path, "kind": ref.kind if ref else "", "environment": parts[0],
                     "machine_path": "/".join(parts[:2]) if len(parts) >= 2 else "", "reason": "redeploy", "via": ""}
    return {**impact, "cis": sorted(cis.values(), key=lambda c: c["path"]), "redeploy": redeploy}
