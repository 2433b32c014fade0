"""The offline export: a zip of static pages (every README sanitized, every machine's and environment's
runbook, every file with size and SHA-256) whose every link lands inside the archive, with no secret
in it at the indexed commit nor at an old one, safe file names from hostile repository names, a tag
or baseline as the revision, bad revisions refused, from the command, the UI and the API, per role."""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import re
import zipfile
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from cmdb import services
from cmdb.export import flat_name
from cmdb.models import ConfigItem
from tests.gitutil import WorkRepo

ROLES = ["viewer", "requester", "approver", "staff"]
TOKEN = "s3cr3t-vault-token-never-exported"
KEY = ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAAKEYBODYNEVERSHOWN\n"
       "-----END OPENSSH PRIVATE KEY-----\n")
KEY_BODY = "KEYBODYNEVERSHOWN"
NGINX_CONF = "worker_processes 4;\nevents {}\n"
HOSTILE_README = """# Infrastructure

ROOT-MARKER. Environments: [production](production/README.md), shared [steps](_common/README.md),
[the nginx config](production/web1/nginx/files/etc/nginx/nginx.conf), [the vault](production/web1/app/secrets/token),
[docs](https://docs.example.org/rebuild), [outside](../../etc/passwd), [absolute](/etc/passwd),
[other host](//evil.example/x), [js](javascript:alert(1)), [missing](production/nowhere/README.md).

<script>alert("xss")</script>
<img src="x" onerror="alert(1)">
<a href="../../../../etc/shadow">raw-html-outside</a>
<img src="https://evil.example/pixel.png" alt="tracker">

![Topology](production/topology.svg)
"""


def write_export_repo(repo: WorkRepo) -> None:
    repo.write("README.md", HOSTILE_README)
    repo.write(".cmdb-secrets", "**/secrets/**\n")
    repo.write("_common/README.md", "# Base\n\nSTEP-TOP-COMMON\n")
    repo.write("production/README.md", "# Production\n\nSTEP-ENV. Machines: [web1](web1/README.md).\n\n![Topology](topology.svg)\n")
    repo.write("production/topology.svg", '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')
    repo.write("production/_common/README.md", "# Shared\n\nSTEP-ENV-COMMON\n")
    repo.write("production/_common/tls/privkey.pem", KEY)  # secret by content
    repo.write("production/web1/README.md",
               "# web1\n\nSTEP-MACHINE. [shared](../_common/README.md), [nginx](nginx/), [up](../../../../x).\n\n"
               "```\n" + KEY + "```\n")
    repo.write("production/web1/nginx/README.md", "# nginx\n\nSTEP-APP-NGINX\n")
    repo.write("production/web1/nginx/manifest.toml",
               '[[file]]\npath = "/etc/ssl/key.pem"\nsource = "../../_common/tls/privkey.pem"\nsecret = true\n\n'
               '[deploy]\nreload = ["systemctl reload nginx"]\n')
    repo.write("production/web1/nginx/files/etc/nginx/nginx.conf", NGINX_CONF)
    repo.write("production/web1/app/README.md", "# app\n")
    repo.write("production/web1/app/secrets/token", TOKEN + "\n")  # secret by .cmdb-secrets
    repo.write("production/web1/app/files/etc/app/id_rsa", "not really a key\n")  # secret by name
    repo.write("production/db1/README.md", "# db1\n\nSTEP-DB1\n")
    # Hostile names: case twins, a newline, a backslash escape, a would-be page name, very long names.
    repo.write("production/Web1/README.md", "# Web1 (upper case)\n")
    repo.write("production/evil\nname/README.md", "# newline machine\n")
    repo.write("production/..\\..\\escape/README.md", "# backslashes\n")
    repo.write("production/ci.html/README.md", "# a machine called ci.html\n")
    repo.write("production/" + "m" * 200 + "/" + "a" * 200 + "/files/" + "f" * 200, "long\n")
    repo.write("test/README.md", "# Test\n")
    repo.write("test/t1/README.md", "# t1\n")


@pytest.fixture
def export_repo(work_repo, db):
    write_export_repo(work_repo)
    work_repo.commit("Export layout")
    services.repo_sync(trigger="test")
    return work_repo


def export(tmp_path, rev: str = "") -> zipfile.ZipFile:
    out = tmp_path / f"export-{len(list(tmp_path.glob('export-*')))}.zip"
    args = ["--output", str(out)] + (["--rev", rev] if rev else [])
    call_command("docs_export", *args, stdout=io.StringIO())
    return zipfile.ZipFile(out)


def members(archive: zipfile.ZipFile) -> dict[str, str]:
    """Every file of the archive, decoded (pictures too: they are SVG text here)."""
    return {name: archive.read(name).decode("utf-8", "replace") for name in archive.namelist()}


def top(archive: zipfile.ZipFile) -> str:
    return archive.namelist()[0].split("/")[0]


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[tuple[str, str, str]] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)
            if name in ("href", "src") and value is not None:
                self.links.append((tag, name, value))


def parse(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    return parser


def assert_every_link_resolves(archive: zipfile.ZipFile) -> int:
    files = members(archive)
    ids = {name: parse(text).ids for name, text in files.items() if name.endswith(".html")}
    checked = 0
    for name, text in files.items():
        if not name.endswith(".html"):
            continue
        for tag, attribute, url in parse(text).links:
            parts = urlsplit(url)
            if tag == "a" and parts.scheme in ("http", "https", "mailto"):
                continue  # external links stay, for a person to follow
            assert not parts.scheme and not parts.netloc and not url.startswith("/"), (name, url)
            target = posixpath.normpath(posixpath.join(posixpath.dirname(name), unquote(parts.path))) \
                if parts.path else name
            assert target in files, (name, url)
            if parts.fragment:
                assert parts.fragment in ids[target], (name, url)
            checked += 1
    return checked


# --- contents ----------------------------------------------------------------------------------------


def test_every_readme_has_its_page_with_its_text_sanitized(export_repo, tmp_path):
    archive = export(tmp_path)
    folder = top(archive)
    files = members(archive)
    for item in ConfigItem.objects.filter(has_readme=True):
        page = f"{folder}/pages/{flat_name('ci', item.path)}"
        assert page in files, item.path
        assert '<article class="markdown-body">' in files[page], item.path
    root = files[f"{folder}/pages/ci.html"]
    assert "ROOT-MARKER" in root
    for html in (t for n, t in files.items() if n.endswith(".html")):
        assert "<script" not in html and "onerror" not in html and "javascript:" not in html
    assert 'href="https://docs.example.org/rebuild"' in root  # external links stay
    assert "evil.example" not in root  # another host's picture would be fetched; a protocol-relative link leaves
    for text in ("outside", "absolute", "raw-html-outside", "missing"):
        assert re.search(rf"<a[^>]*>{text}</a>", root) and not re.search(rf'<a href="[^"]*"[^>]*>{text}</a>', root)
    assert f'href="{flat_name("ci", "production")}"' in root
    assert f'src="{flat_name("raw", "production/topology.svg", "")}"' in root
    assert files[f"{folder}/pages/raw+production+topology.svg"].startswith("<svg")


def test_every_link_inside_the_export_lands_on_a_file_of_the_archive(export_repo, tmp_path):
    archive = export(tmp_path)
    assert assert_every_link_resolves(archive) > 50
    files = members(archive)
    css = [n for n in files if n.endswith(".css")]
    assert sorted(posixpath.basename(n) for n in css) == ["bootstrap.min.css", "portal.css", "print.css", "pygments.css"]
    for name, text in files.items():  # nothing fetched from anywhere: no absolute URL, no portal path
        if name.endswith(".html"):
            assert "/static/" not in text and "<script" not in text, name
            for tag, _, url in parse(text).links:
                assert tag == "a" or not urlsplit(url).scheme, (name, url)


def test_runbooks_of_every_machine_and_environment_are_in_the_archive(export_repo, tmp_path):
    archive = export(tmp_path)
    folder = top(archive)
    files = members(archive)
    for item in ConfigItem.objects.filter(kind__in=["machine", "environment"]):
        name = f"{folder}/pages/{flat_name('runbook', item.path)}"
        assert name in files, item.path
        assert flat_name("runbook", item.path) in files[f"{folder}/pages/{flat_name('ci', item.path)}"]
    web1 = files[f"{folder}/pages/{flat_name('runbook', 'production/web1')}"]
    at = [web1.find(m) for m in ("STEP-TOP-COMMON", "STEP-ENV-COMMON", "STEP-ENV.", "STEP-MACHINE.", "STEP-APP-NGINX")]
    assert -1 not in at and at == sorted(at)
    assert '<article class="markdown-body"><h1 id="md-nginx">nginx</h1>' in web1  # rendered, not escaped
    web1 = web1.replace("<wbr>", "")
    assert "systemctl reload nginx" in web1 and "/etc/ssl/key.pem" in web1
    env = files[f"{folder}/pages/{flat_name('runbook', 'production')}"]
    assert "STEP-DB1" in env and "STEP-MACHINE." in env and env.count("STEP-ENV-COMMON") == 1
    index = files[f"{folder}/index.html"]
    assert f"pages/{flat_name('runbook', 'production/web1')}" in index


def row(html: str, path: str) -> str:
    match = re.search(rf'<tr id="f-[0-9a-f]+" data-path="{re.escape(path)}">(.*?)</tr>', html, re.S)
    assert match, path
    return match.group(1)


def test_files_are_listed_with_size_and_sha256_and_secrets_without_either(export_repo, tmp_path):
    archive = export(tmp_path)
    folder = top(archive)
    files = members(archive)
    everything = files[f"{folder}/pages/artifacts.html"]
    nginx = files[f"{folder}/pages/{flat_name('ci', 'production/web1/nginx')}"]
    for html in (everything, nginx):
        conf = row(html, "production/web1/nginx/files/etc/nginx/nginx.conf")
        assert hashlib.sha256(NGINX_CONF.encode()).hexdigest() in conf
        assert f">{len(NGINX_CONF.encode())}<" in conf
    for secret in ("production/_common/tls/privkey.pem", "production/web1/app/secrets/token",
                   "production/web1/app/files/etc/app/id_rsa"):
        listed = row(everything, secret)
        assert "secret, not exported" in listed and not re.search(r"[0-9a-f]{64}|>\d+<", listed), secret


def assert_no_secret(archive: zipfile.ZipFile) -> None:
    digests = {hashlib.sha256(c.encode()).hexdigest() for c in (KEY, TOKEN + "\n", "not really a key\n")}
    for name, text in members(archive).items():
        assert TOKEN not in text and KEY_BODY not in text and "PRIVATE KEY-----\n" not in text, name
        assert not any(d in text for d in digests), name


def test_no_secret_at_the_indexed_commit_nor_at_an_older_one(export_repo, tmp_path):
    export_repo.write("production/web1/app/vault.txt", TOKEN + "\n")  # before the glob that makes it secret
    old = export_repo.commit("Vault file")
    export_repo.write(".cmdb-secrets", "**/secrets/**\n**/vault.txt\n")
    export_repo.commit("vault.txt is a secret")
    services.repo_sync(trigger="test")
    assert_no_secret(export(tmp_path))
    at_old = export(tmp_path, old)
    assert_no_secret(at_old)
    assert "secret, not exported" in row(members(at_old)[f"{top(at_old)}/pages/artifacts.html"],
                                         "production/web1/app/vault.txt")


def test_hostile_repository_names_become_safe_distinct_file_names(export_repo, tmp_path):
    archive = export(tmp_path)
    names = archive.namelist()
    assert len({n.lower() for n in names}) == len(names)  # distinct on a case-insensitive disk too
    for name in names:
        assert not name.startswith("/") and "\\" not in name and ".." not in name.split("/"), name
        assert all(c.isascii() and c.isprintable() for c in name), name
        assert all(len(part.encode()) <= 255 for part in name.split("/")), name
        assert re.fullmatch(r"[a-z0-9._~+/-]+", name), name
    pages = [n for n in names if "/pages/ci+production+" in n and n.count("+") == 2]
    depth2 = [i.path for i in ConfigItem.objects.filter(path__startswith="production/") if i.path.count("/") == 1]
    assert len(pages) == len(depth2) == 7  # five machines, the one called ci.html, and _common
    assert f"{top(archive)}/pages/{flat_name('ci', 'production/Web1')}" in names
    assert flat_name("ci", "production/Web1") != flat_name("ci", "production/web1")
    assert_every_link_resolves(archive)


def test_export_at_a_tag_shows_that_revision(export_repo, tmp_path):
    export_repo.git("tag", "-a", "baseline-1", "-m", "Baseline")
    export_repo.git("push", "-q", "origin", "baseline-1")
    old = export_repo.head()
    export_repo.write("production/web1/README.md", "# web1\n\nSTEP-MACHINE-REWRITTEN\n")
    export_repo.commit("Rewrite web1")
    services.repo_sync(trigger="test")
    archive = export(tmp_path, "baseline-1")
    assert top(archive) == f"cm-docs-{old[:12]}"
    files = members(archive)
    index = files[f"{top(archive)}/index.html"]
    assert "baseline-1" in index and old in index
    web1 = files[f"{top(archive)}/pages/{flat_name('ci', 'production/web1')}"]
    assert "STEP-MACHINE." in web1 and "STEP-MACHINE-REWRITTEN" not in web1


def test_an_unknown_revision_is_refused_everywhere(export_repo, tmp_path, viewer, client_for, api_for):
    with pytest.raises(CommandError, match="Unknown revision"):
        export(tmp_path, "no-such-branch")
    assert not list(tmp_path.glob("*.zip")) and not list(tmp_path.glob(".docs-export-*"))
    response = client_for(viewer).get(reverse("cmdb:docs_export"), {"rev": "no-such-branch"})
    assert response.status_code == 400 and b"Unknown revision" in response.content
    for rev in ("no-such-branch", "HEAD~99999", "--upload-pack=x", "a" * 300, "ma\x00in"):
        answer = api_for(viewer).get("/api/export/", {"rev": rev})
        assert answer.status_code == 400, rev
        assert "detail" in answer.json()


# --- entry points and roles ----------------------------------------------------------------------------


def zip_of(response) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


@pytest.mark.parametrize("role", ROLES)
def test_every_role_downloads_the_export_from_the_ui_and_the_api(export_repo, all_roles, role, client_for, api_for):
    sha = services.indexed_sha()
    for response in (client_for(all_roles[role]).get(reverse("cmdb:docs_export")),
                     api_for(all_roles[role]).get("/api/export/")):
        assert response.status_code == 200
        assert response["Content-Type"] == "application/zip"
        assert response["Content-Disposition"] == f'attachment; filename="cm-docs-{sha[:12]}.zip"'
        assert f"cm-docs-{sha[:12]}/index.html" in zip_of(response).namelist()


def test_anonymous_visitors_get_no_export(export_repo, client):
    response = client.get(reverse("cmdb:docs_export"))
    assert response.status_code == 302 and reverse("login") in response["Location"]
    assert client.get("/api/export/").status_code == 401


def test_exports_are_rate_limited_per_person(export_repo, viewer, client_for, api_for, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "export": "2/hour"}}
    assert client_for(viewer).get(reverse("cmdb:docs_export")).status_code == 200
    assert api_for(viewer).get("/api/export/").status_code == 200
    ui = client_for(viewer).get(reverse("cmdb:docs_export"))
    api = api_for(viewer).get("/api/export/")
    assert ui.status_code == 429 and int(ui["Retry-After"]) > 0
    assert api.status_code == 429


def test_the_download_is_offered_on_the_repository_page_and_the_baselines(export_repo, staff, client_for):
    page = client_for(staff).get(reverse("cmdb:root")).content.decode()
    assert f'href="{reverse("cmdb:docs_export")}"' in page and "Download offline documentation" in page
    export_repo.git("tag", "-a", "baseline-1", "-m", "Baseline")
    export_repo.git("push", "-q", "origin", "baseline-1")
    from changes.models import Baseline

    Baseline.objects.create(name="baseline-1", sha=export_repo.head(), created_by=staff)
    baselines = client_for(staff).get(reverse("changes:baseline_list")).content.decode()
    assert f'href="{reverse("cmdb:docs_export")}?rev=baseline-1"' in baselines


def test_the_api_schema_documents_a_zip(export_repo, viewer, api_for):
    schema = json.loads(api_for(viewer).get("/api/schema/?format=json").content)
    answers = schema["paths"]["/api/export/"]["get"]["responses"]
    assert "application/zip" in answers["200"]["content"]
    assert {"400", "401", "429"} <= set(answers)


def test_the_demo_exports_every_readme_and_runbook_with_working_links(demo, tmp_path):
    archive = export(tmp_path)
    folder = top(archive)
    names = set(archive.namelist())
    for item in ConfigItem.objects.all():
        assert f"{folder}/pages/{flat_name('ci', item.path)}" in names, item.path
        if item.kind == "machine":
            assert f"{folder}/pages/{flat_name('runbook', item.path)}" in names, item.path
    assert assert_every_link_resolves(archive) > 100
    assert "PRIVATE KEY-----\n" not in "".join(members(archive).values())
