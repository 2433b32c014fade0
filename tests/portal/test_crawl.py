"""A crawl of every page reachable by following links, as each role: no server error anywhere, no
secret content for roles without ``cmdb.view_secret``, and the login page for anonymous visitors."""

from __future__ import annotations

import io
import re
import zipfile
from collections import deque
from urllib.parse import urljoin, urlsplit

import pytest
from django.test import Client

from cmdb import services
from tests.gitutil import on_branch

pytestmark = pytest.mark.django_db

NAME_SECRET = "NAME-SECRET-9f3a"    # in a *.key file: secret by its name
GLOB_SECRET = "GLOB-SECRET-71c2"    # under **/secrets/**: secret through .cmdb-secrets
PASTED_KEY = "PASTEDKEYBODY0c4e"    # a private key pasted into a README
MARKERS = (NAME_SECRET, GLOB_SECRET, PASTED_KEY)
HREF = re.compile(r'href="([^"#]+)')
PAGE_CAP = 300


@pytest.fixture
def planted(synced, requester):
    from changes import services as cs

    synced.write("production/web1/nginx/files/etc/ssl/site.key", f"{NAME_SECRET}\n")
    synced.write("production/web1/nginx/secrets/api-token", f"{GLOB_SECRET}\n")
    synced.write("production/db1/README.md",
                 f"# db1\n\n-----BEGIN RSA PRIVATE KEY-----\n{PASTED_KEY}\n-----END RSA PRIVATE KEY-----\n")
    synced.commit("plant secrets")
    services.repo_sync(trigger="test")
    on_branch(synced, "change/crawl", {"production/web1/nginx/secrets/api-token": f"{GLOB_SECRET}-v2\n",
                                       "test/web-test1/nginx/files/etc/nginx/nginx.conf": "worker_processes 5;\n"})
    change = cs.change_create(acting_user=requester, branch="change/crawl", title="Crawl me")
    cs.change_submit(change=change, acting_user=requester)
    return synced


def _pattern(url: str) -> str:
    """Pages that differ only in ids or page numbers are one page for the crawl."""
    parts = urlsplit(url)
    query = "&".join(sorted(k.split("=")[0] for k in parts.query.split("&") if k))
    return re.sub(r"/\d+/", "/N/", parts.path) + "?" + query


def _body(response) -> bytes:
    """What a person would read: a download's bytes, every file of a zip (the offline export)."""
    body = b"".join(response.streaming_content) if response.streaming else response.content
    if response.get("Content-Type") == "application/zip":
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            return b"\n".join(archive.read(name) for name in archive.namelist())
    return body


def crawl(client: Client) -> dict[str, tuple[int, bytes]]:
    seen: dict[str, tuple[int, bytes]] = {}
    patterns: set[str] = set()
    queue = deque(["/"])
    while queue and len(seen) < PAGE_CAP:
        url = queue.popleft()
        if url in seen or url.startswith(("/accounts/logout", "/static/")):
            continue
        r = client.get(url)
        seen[url] = (r.status_code, _body(r))
        if r.status_code >= 300 or not r.get("Content-Type", "").startswith("text/html"):
            continue
        for href in HREF.findall(r.content.decode("utf-8", "replace")):
            href = href.replace("&amp;", "&")
            target = urljoin(url, href)
            parts = urlsplit(target)
            if parts.scheme or parts.netloc:
                continue  # another site: not ours to crawl
            pattern = _pattern(target)
            if pattern not in patterns:
                patterns.add(pattern)
                queue.append(target)
    return seen


@pytest.mark.parametrize("role", ["viewer", "requester", "approver", "staff"])
def test_every_reachable_page_answers_without_a_server_error_or_a_secret(planted, all_roles, role):
    client = Client()
    client.force_login(all_roles[role])
    pages = crawl(client)
    assert len(pages) > 40, sorted(pages)
    errors = {url: status for url, (status, _) in pages.items() if status >= 500}
    assert errors == {}
    if not all_roles[role].has_perm("cmdb.view_secret"):
        leaks = {url: [m for m in MARKERS if m.encode() in body] for url, (_, body) in pages.items()}
        assert {url: m for url, m in leaks.items() if m} == {}
    else:  # the crawl does reach the secrets: the check above looks where they are
        assert any(NAME_SECRET.encode() in body for _, body in pages.values())


def test_anonymous_visitors_get_the_login_page_everywhere(planted, viewer):
    client = Client()
    client.force_login(viewer)
    urls = [u for u in crawl(client) if not u.startswith(("/api/", "/accounts/"))]
    anonymous = Client()
    for url in urls:
        r = anonymous.get(url)
        assert r.status_code == 302 and r["Location"].startswith("/accounts/login/"), (url, r.status_code)
