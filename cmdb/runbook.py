"""Rebuild runbooks: everything a person needs to rebuild a machine (or a whole environment) from
scratch, in the order it is done, at one revision.

A machine's runbook is the READMEs that apply to it, in order: the top-level ``_common`` (shared by
every environment), the environment's ``_common``, the environment, the machine's ``_common``, the
machine, then each application with the files it declares (target, mode, owner, source) and its
reload commands. An environment's runbook is its shared sections once, then every machine's own.

Read-only. The structure always comes from Git at the asked revision (a few ``ls_tree`` calls and one
``read_blobs``), so every revision reads the same way; READMEs at the indexed commit come from the
index, where they are rendered once and kept. Declarations come from :mod:`fleet.declared`, the same
reader dry runs and audits use, so the runbook says what a deploy would write. Secret files are
listed, never shown: nothing here reads a declared file's content.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.utils.safestring import SafeString

from cmdb import browse, indexer, layout, lint, services
from cmdb.gitrepo import TreeEntry
from cmdb.models import ConfigItem
from fleet.declared import declared_configuration, is_machine_dir
from fleet.manifest import FILES_DIR, MachineDeclaration

MACHINES_PER_PAGE = 20

# (kind, repository path) -> the URL of its page ("page", "file"): the portal's, or the offline export's.
Link = Callable[[str, str], str]


def portal_links(rev: str | None) -> Link:
    return lambda kind, path: services.portal_url(kind, path, rev)


@dataclass
class DeclaredRow:
    """One file an application installs, as the runbook and the application page list it."""

    target: str
    kind: str  # "file" or "symlink"
    mode: str  # "0644"; "" for a symlink
    owner: str  # "root:www-data", "" when neither is declared (then never compared nor set)
    source_path: str  # repository path of the content
    source_label: str  # relative to the application when it lies in its files/, else the repository path
    shared: bool  # the content comes from outside the application's files/ (a _common folder, usually)
    url: str
    secret: bool


@dataclass
class Declared:
    """What one application declares at one revision."""

    files: list[DeclaredRow] = field(default_factory=list)
    reload: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass
class Section:
    """One README of the runbook, with what its folder installs when it is an application."""

    path: str
    kind: str
    name: str
    role: str  # what the step is for, e.g. "Shared by every machine in production"
    anchor: str
    url: str
    has_readme: bool
    html: SafeString | str = ""
    declared: Declared | None = None  # applications only
    problems: list[str] = field(default_factory=list)  # manifest problems outside the applications
    access: str = ""  # machines only: how the portal reaches it
    step: int = 0  # its number in the order of the rebuild


@dataclass
class MachineBook:
    path: str
    name: str
    url: str
    sections: list[Section]


@dataclass
class Runbook:
    path: str
    kind: str  # environment or machine
    sha: str
    rev: str | None
    shared: list[Section]  # the top-level and environment sections
    machines: list[MachineBook]
    page: Page | None = None  # environments: the page of machines shown

    def __post_init__(self) -> None:
        # The shared steps are done once; each machine's steps follow them, numbered on from there.
        for number, section in enumerate(self.shared, 1):
            section.step = number
        for machine in self.machines:
            for number, section in enumerate(machine.sections, len(self.shared) + 1):
                section.step = number

    @property
    def sections(self) -> list[Section]:
        return [*self.shared, *(s for m in self.machines for s in m.sections)]


# --- declarations ------------------------------------------------------------------------------------
def _declarations(sha: str, machines: list[str]) -> dict[str, MachineDeclaration]:
    repo = services.get_repo()
    return declared_configuration(repo, sha, machines=machines, local_root_base=settings.CMDB_LOCAL_ROOT_BASE,
                                  secret_patterns=indexer.secret_patterns(repo, sha))


def _owner(owner: str | None, group: str | None) -> str:
    if owner is None and group is None:
        return ""
    return f"{owner or '–'}:{group or '–'}"


def _declared(decl: MachineDeclaration | None, app_path: str, link: Link) -> Declared:
    out = Declared()
    if decl is None:
        return out
    files_prefix = f"{app_path}/{FILES_DIR}/"
    for f in decl.files.values():
        if f.app_path != app_path:
            continue
        own = f.source_path.startswith(files_prefix)
        out.files.append(DeclaredRow(
            target=f.target, kind=f.kind, mode="" if f.kind == "symlink" else f"{f.mode:04o}",
            owner=_owner(f.owner, f.group), source_path=f.source_path,
            source_label=layout.relative_to_ci(f.source_path, app_path) if own else f.source_path,
            shared=not own, url=link("file", f.source_path), secret=f.secret,
        ))
    out.reload = list(decl.reload.get(app_path, []))
    out.problems = [str(e) for e in decl.errors if e.path == app_path or e.path.startswith(app_path + "/")]
    return out


def application_declared(app_path: str, sha: str, rev: str | None) -> Declared:
    """The files an application declares and its reload commands (the application page's table)."""
    machine = posixpath.dirname(app_path)
    return _declared(_declarations(sha, [machine]).get(machine), app_path, portal_links(rev))


def _access(decl: MachineDeclaration | None) -> str:
    access = decl.access if decl is not None else None
    if access is None or access.transport == "manual":
        return "configured by hand: the portal never deploys to it, audits ask a person to check it"
    if access.transport == "ssh":
        return f"deployed over SSH to {access.host or '(no host)'}"
    return "deployed by the portal to a local tree"


# --- READMEs -----------------------------------------------------------------------------------------
class _Readmes:
    """The rendered README of each folder, from the index at the indexed commit, else from Git."""

    def __init__(self, rev: str | None, can_view_secrets: bool):
        self.rev = rev
        self.can_view_secrets = can_view_secrets

    def render(self, entries: dict[str, TreeEntry]) -> dict[str, SafeString | str]:
        """``entries``: README tree entries by folder path."""
        html: dict[str, str] = {}
        if self.rev is None:
            items = ConfigItem.objects.filter(path__in=list(entries)).only(
                "pk", "path", "has_readme", "readme_sha", "readme_markdown", "readme_html")
            for item in items:
                html[item.path] = services.ci_readme_html(item)
        missing = {path: entry for path, entry in entries.items() if path not in html}
        blobs = services.get_repo().read_blobs(e.sha for e in missing.values()) if missing else {}
        for path, entry in missing.items():
            text = lint.decode_readme(blobs.get(entry.sha, b""))[0]
            html[path] = services.render_readme(text, path, self.rev) if text.strip() else ""
        return {path: browse.readme_for(h, can_view_secrets=self.can_view_secrets) for path, h in html.items()}


def _listing(sha: str, env: str, machines: list[str]) -> tuple[set[str], dict[str, TreeEntry]]:
    """(CI folders, README entry by folder) of the top-level and environment shared parts and ``machines``."""
    paths = [layout.COMMON, f"{env}/{layout.COMMON}", f"{env}/{layout.README}", *machines]
    folders: set[str] = set()
    readmes: dict[str, TreeEntry] = {}
    for entry in services.get_repo().ls_tree(sha, paths=paths):
        folders.update(layout.ci_dirs_of(entry.path))
        if entry.type == "blob" and layout.is_readme(entry.path):
            readmes[posixpath.dirname(entry.path)] = entry
    return folders, readmes


def _role(path: str, kind: str) -> str:
    parts = path.split("/")
    if kind == layout.COMMON_KIND:
        if len(parts) == 1:
            return "Shared by every environment"
        if len(parts) == 2:
            return f"Shared by every machine in {parts[0]}"
        return f"Shared by the applications on {parts[1]}"
    return {layout.ENVIRONMENT: "Environment", layout.MACHINE: "Machine", layout.APPLICATION: "Application"}[kind]


def _is_application(path: str) -> bool:
    ref = layout.ci_for_dir(path)
    return ref is not None and ref.kind == layout.APPLICATION


class _Builder:
    def __init__(self, folders: set[str], readmes: dict[str, TreeEntry], html: Mapping[str, SafeString | str],
                 link: Link):
        self.folders, self.readmes, self.html, self.link = folders, readmes, html, link
        self.count = 0

    def section(self, path: str, **extra) -> Section:
        ref = layout.ci_for_dir(path)
        assert ref is not None
        self.count += 1
        return Section(path=path, kind=ref.kind, name=ref.name, role=_role(path, ref.kind),
                       anchor=f"rb-{self.count}", url=self.link("page", path),
                       has_readme=path in self.readmes, html=self.html.get(path, ""), **extra)

    def shared(self, env: str) -> list[Section]:
        out = [self.section(p) for p in (layout.COMMON, f"{env}/{layout.COMMON}") if p in self.folders]
        return [*out, self.section(env)]

    def machine(self, path: str, decl: MachineDeclaration | None) -> MachineBook:
        common = f"{path}/{layout.COMMON}"
        apps = sorted(f for f in self.folders if posixpath.dirname(f) == path and _is_application(f))
        app_prefixes = tuple(f"{a}/" for a in apps)
        leftover = [str(e) for e in (decl.errors if decl else [])
                    if not e.path.startswith(app_prefixes) and e.path not in apps]
        sections = [self.section(common)] if common in self.folders else []
        sections.append(self.section(path, problems=leftover, access=_access(decl)))
        sections += [self.section(a, declared=_declared(decl, a, self.link)) for a in apps]
        return MachineBook(path, posixpath.basename(path), self.link("page", path), sections)


def _build(sha: str, rev: str | None, env: str, machines: list[str], can_view_secrets: bool) -> _Builder:
    folders, readmes = _listing(sha, env, machines)
    html = _Readmes(rev, can_view_secrets).render(readmes)
    return _Builder(folders, readmes, html, portal_links(rev))


def environment_books(sha: str, env: str, machines: list[str], *, html: Mapping[str, SafeString | str],
                      link: Link) -> tuple[list[Section], list[MachineBook]]:
    """The shared sections of ``env`` and the books of ``machines`` (machine folders of ``env`` at
    ``sha``), with READMEs already rendered (``html`` by folder) and links made by ``link``: the
    offline export's, whose pages are files rather than portal URLs."""
    folders, readmes = _listing(sha, env, machines)
    builder = _Builder(folders, readmes, html, link)
    decls = _declarations(sha, machines) if machines else {}
    return builder.shared(env), [builder.machine(m, decls.get(m)) for m in machines]


def machine_runbook(path: str, rev: str | None, *, can_view_secrets: bool) -> Runbook | None:
    """The runbook of the machine at ``path`` (``env/machine``), or None when there is no such machine."""
    ref = layout.ci_for_dir(path)
    if ref is None or ref.kind != layout.MACHINE:
        return None
    sha, carry = services.resolve_rev(rev)
    env = path.split("/", 1)[0]
    builder = _build(sha, carry, env, [path], can_view_secrets)
    if path not in builder.folders:
        return None
    decl = _declarations(sha, [path]).get(path)
    return Runbook(path, layout.MACHINE, sha, carry, builder.shared(env), [builder.machine(path, decl)])


def environment_runbook(env: str, rev: str | None, *, page: str | int | None,
                        can_view_secrets: bool) -> Runbook | None:
    """The runbook of environment ``env``: its shared sections, then a page of its machines."""
    ref = layout.ci_for_dir(env)
    if ref is None or ref.kind != layout.ENVIRONMENT:
        return None
    sha, carry = services.resolve_rev(rev)
    children = services.get_repo().ls_tree(sha, env, recursive=False)
    if not children:
        return None
    names = sorted(e.path for e in children
                   if e.type == "tree" and is_machine_dir(env, posixpath.basename(e.path)))
    machines_page = Paginator(names, MACHINES_PER_PAGE).get_page(page)
    shown = list(machines_page.object_list)
    builder = _build(sha, carry, env, shown, can_view_secrets)
    decls = _declarations(sha, shown) if shown else {}
    return Runbook(env, layout.ENVIRONMENT, sha, carry, builder.shared(env),
                   [builder.machine(m, decls.get(m)) for m in shown], page=machines_page)
