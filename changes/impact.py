"""What a change request touches: the changed files, the CIs they belong to, and the approvals needed.

Pure reads of Git and a few rows; ``changes.services`` stores the result on the change request.
Every impacted CI says why (``reason``, ``via``) and whether it needs a deploy (``deploy``): a
change made only of documentation is shown for review, but no machine needs a deploy or a dry run.
"""

from __future__ import annotations

import posixpath

from changes.models import ApprovalPolicy
from cmdb import layout
from cmdb.gitrepo import ConfigRepo
from cmdb.models import ConfigItem
from cmdb.secrets import SecretPatterns
from fleet.declared import declared_configuration, is_machine_dir
from fleet.manifest import FILES_DIR

DIRECT, SOURCE, COMMON, REDEPLOY = "direct", "source", "common", "redeploy"
# When several reasons reach one CI, the row says the most specific one (deploy is OR-ed).
_RANK = {DIRECT: 0, SOURCE: 1, COMMON: 2, REDEPLOY: 3}
DOC_EXTENSIONS = {".md", ".markdown"}


def is_documentation(path: str) -> bool:
    """README.md files, pictures and other Markdown that document a CI. A file under an application's
    ``files/`` tree is what a machine holds (a deployed ``index.md`` or logo), never documentation."""
    owner = layout.owning_ci(path)
    if owner is not None and owner.kind == layout.APPLICATION:
        if layout.relative_to_ci(path, owner.path).startswith(f"{FILES_DIR}/"):
            return False
    name = posixpath.basename(path)
    return name == layout.README or layout.is_image(path) or posixpath.splitext(name)[1].lower() in DOC_EXTENSIONS


def _in_machine_dir(path: str) -> bool:
    parts = path.split("/")
    return len(parts) >= 3 and is_machine_dir(parts[0], parts[1]) and parts[2] != layout.COMMON


def sourcing_applications(repo: ConfigRepo, revisions: list[str], paths: set[str]) -> dict[str, str]:
    """The applications whose manifests take one of ``paths`` through ``source``, at any of
    ``revisions`` (app path -> the first such path). The merge base counts as much as the branch
    head: a source the branch removes or renames still changes what the application deploys."""
    found: dict[str, str] = {}
    for rev in dict.fromkeys(revisions):
        # One ls_tree and one read_blobs per revision; secrets do not matter to who uses a file.
        for decl in declared_configuration(repo, rev, secret_patterns=SecretPatterns()).values():
            for declared in decl.files.values():
                source = declared.source_path
                if source in paths and not source.startswith(f"{declared.app_path}/"):
                    if source < found.get(declared.app_path, "\uffff"):
                        found[declared.app_path] = source
    return found


def _row(ci: layout.CIRef, reason: str, via: str, deploy: bool) -> dict:
    parts = ci.path.split("/") if ci.path else []
    env = parts[0] if parts and parts[0] != layout.COMMON else ""
    machine = "/".join(parts[:2]) if len(parts) >= 2 and parts[1] != layout.COMMON else ""
    return {"path": ci.path, "kind": ci.kind, "environment": env, "machine_path": machine,
            "reason": reason, "via": via, "deploy": deploy}


def compute_impact(repo: ConfigRepo, base: str, head: str) -> dict:
    """Files changed between the merge base and the branch head and the CIs they impact: the CIs
    they belong to, the applications whose manifests ``source`` them, and the CIs one level below a
    changed ``_common`` folder (for review only when what changed there is documentation)."""
    changes = repo.changed_paths(base, head)
    changed = {c.path for c in changes}
    # Reading every manifest twice is bounded to changes that reach outside machine folders (the
    # _common folders sources name); a change inside machine folders only is impacted directly.
    sourced = (sourcing_applications(repo, [head, base], changed)
               if any(not _in_machine_dir(p) for p in changed) else {})
    sourced_paths = set(sourced.values())
    files = []
    cis: dict[str, dict] = {}

    def add(ci: layout.CIRef, reason: str, via: str, deploy: bool) -> None:
        row = cis.get(ci.path)
        if row is None:
            cis[ci.path] = _row(ci, reason, via, deploy)
            return
        row["deploy"] = row["deploy"] or deploy
        if _RANK[reason] < _RANK[row["reason"]]:
            row["reason"], row["via"] = reason, via

    commons: dict[str, bool] = {}  # _common folder -> whether a non-documentation file no manifest sources changed
    documentation_only = bool(changes)
    for change in changes:
        owner = layout.owning_ci(change.path)
        doc = change.path not in sourced_paths and is_documentation(change.path)
        documentation_only = documentation_only and doc
        files.append({"path": change.path, "status": change.status, "ci": owner.path if owner else None,
                      "documentation": doc})
        if owner is None:
            continue
        add(owner, DIRECT, "", not doc)
        if owner.kind == layout.COMMON_KIND and change.path not in sourced_paths:
            commons[owner.path] = commons.get(owner.path, False) or not doc
    for app_path, via in sorted(sourced.items()):
        ref = layout.ci_for_dir(app_path)
        if ref is not None:
            add(ref, SOURCE, via, True)
    for common, deploy in sorted(commons.items()):
        # Documentation of a _common folder (its shared steps) is reviewed by the CIs that share it;
        # a configuration file no manifest sources may be used by hand on any of them.
        parent = posixpath.dirname(common)
        for entry in repo.ls_tree(head, parent, recursive=False) if parent else repo.ls_tree(head, recursive=False):
            ref = layout.ci_for_dir(entry.path) if entry.type == "tree" else None
            if ref is not None and ref.kind != layout.COMMON_KIND:
                add(ref, COMMON, common, deploy)
    return {"base": base, "head": head, "files": files, "cis": sorted(cis.values(), key=lambda c: c["path"]),
            "documentation_only": documentation_only}


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
    touches root-level files (one approval would otherwise release a change to all of them).
    Documentation counts like configuration: it is what people follow on those machines."""
    envs = set(environments_of(impact))
    if touches_root(impact):
        envs |= known_environments() | set(ApprovalPolicy.objects.values_list("environment", flat=True))
    return ApprovalPolicy.required_for(sorted(envs))


def with_redeploy(impact: dict, redeploy: list[str]) -> dict:
    """``impact`` plus the CIs named for re-deployment (kept across branch moves); they need a deploy."""
    cis = {c["path"]: dict(c) for c in impact["cis"]}
    for path in redeploy:
        if path in cis:
            cis[path]["deploy"] = True
            continue
        ref = layout.ci_for_dir(path)
        parts = path.split("/")
        cis[path] = {"path": path, "kind": ref.kind if ref else "", "environment": parts[0],
                     "machine_path": "/".join(parts[:2]) if len(parts) >= 2 else "", "reason": REDEPLOY, "via": "",
                     "deploy": True}
    return {**impact, "cis": sorted(cis.values(), key=lambda c: c["path"]), "redeploy": redeploy,
            "documentation_only": False}
