"""The code map holds: one folder per process, layers import downwards only, no module too large."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ("cmdb", "fleet", "changes", "deploys", "audits", "accounts", "notifications", "portal")
MAX_LINES = 600
# What each package may import of the others (its own modules always).
ALLOWED = {
    "fleet": {"cmdb.gitrepo", "cmdb.secrets", "cmdb.layout"},
    "cmdb": {"fleet", "portal.errors", "portal.api", "portal.listing", "portal.roles", "portal.tasks", "portal.env",
             "portal.throttling"},
    "changes": {"cmdb", "fleet", "portal.errors", "portal.api", "portal.listing", "portal.roles", "portal.tasks"},
    "deploys": {"cmdb", "fleet", "changes.models", "changes.services", "changes.signals", "changes.verification", "audits.models",
                "audits.services", "audits.signals", "portal.errors", "portal.api", "portal.listing", "portal.roles",
                "portal.tasks"},
    "audits": {"cmdb", "fleet", "changes.models", "changes.services", "changes.queries", "portal.errors",
               "portal.api", "portal.listing", "portal.roles", "portal.tasks"},
    "accounts": {"cmdb.api.items", "cmdb.converters", "changes.services", "portal.errors", "portal.api",
                 "portal.listing", "portal.roles"},
    # Above the processes it reports on: it listens to their signals and reads their models.
    "notifications": {"cmdb", "changes.models", "changes.services", "changes.signals", "audits.models",
                      "audits.signals", "deploys.models", "portal.errors", "portal.api", "portal.listing",
                      "portal.roles", "portal.tasks"},
}


def modules():
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" not in path.parts:
                yield app, path


def imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []


def _allowed(app: str, module: str) -> bool:
    top = module.split(".")[0]
    if top == app or top not in APPS:
        return True
    if app == "portal":
        return True
    return any(module == a or module.startswith(a + ".") for a in ALLOWED[app])


@pytest.mark.parametrize(("app", "path"), list(modules()), ids=lambda v: str(v).replace(str(ROOT) + "/", ""))
def test_a_module_imports_only_from_the_layers_below_it(app, path):
    wrong = []
    for module, names in imports(path):
        targets = [f"{module}.{n}" for n in names] if module in APPS else [module]
        for target in targets:
            if not _allowed(app, target):
                wrong.append(target)
            if module.split(".")[0] in APPS and module.split(".")[0] != app:
                wrong += [f"{module}.{n}" for n in names if n.startswith("_") and not n.startswith("__")]
    assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"


@pytest.mark.parametrize(("app", "path"), list(modules()), ids=lambda v: str(v).replace(str(ROOT) + "/", ""))
def test_no_module_is_over_600_lines(app, path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_only_the_git_wrapper_knows_the_ref_layout():
    users = [str(p.relative_to(ROOT)) for _, p in modules() if "refs/remotes/" in p.read_text()]
    assert users == ["cmdb/gitrepo.py"]


def test_only_one_module_speaks_ssh_and_one_speaks_git():
    def importers(library: str) -> list[str]:
        return sorted(str(p.relative_to(ROOT)) for _, p in modules()
                      if any(m.split(".")[0] == library for m, _ in imports(p)))

    assert importers("asyncssh") == ["fleet/transport/ssh.py"]
    assert importers("git") == ["cmdb/gitrepo.py"]


def test_only_the_sign_in_modules_speak_ldap_and_openid_connect():
    def importers(*libraries: str) -> list[str]:
        return sorted(str(p.relative_to(ROOT)) for _, p in modules()
                      if any(m.split(".")[0] in libraries for m, _ in imports(p)))

    # portal/sso.py builds the directory's settings (search objects, group type); auth_ldap.py signs in.
    assert importers("ldap", "django_auth_ldap") == ["portal/auth_ldap.py", "portal/sso.py"]
    assert importers("mozilla_django_oidc", "requests") == ["portal/auth_oidc.py"]


def test_only_the_notification_senders_speak_http():
    users = sorted(str(p.relative_to(ROOT)) for _, p in modules()
                   if any(m in ("urllib.request", "http.client", "requests", "httpx") for m, _ in imports(p))
                   and p.parent.name != "portal")  # the composition root's sign-in modules: the test above
    assert users == ["notifications/senders.py"]
