"""Helpers for the browser-UI tests (plain functions; the fixtures live in tests/conftest.py)."""

from __future__ import annotations

import re

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.gitutil import WorkRepo

_ARTICLE = re.compile(r'<article class="markdown-body">(.*?)</article>', re.S)


def readme_html(response) -> str:
    """The rendered README of a CI page (the part of the page the repository controls)."""
    match = _ARTICLE.search(response.content.decode())
    assert match, "no rendered README on the page"
    return match.group(1)


def text(response) -> str:
    """The page with the <wbr> hints that let long paths wrap taken out."""
    return response.content.decode().replace("<wbr>", "")


def ci_url(path: str, tab: str = "", **query) -> str:
    if tab:
        url = reverse(f"cmdb:ci_{tab}", kwargs={"path": path})
    else:
        url = reverse("cmdb:ci_detail", kwargs={"path": path}) if path else reverse("cmdb:root")
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def count_queries(client, url: str) -> int:
    """Queries of one request to ``url``, after a first one (READMEs are rendered once, on first view)."""
    assert client.get(url).status_code == 200
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(ctx.captured_queries)


def csrf_post(client, url: str, data: dict | None = None):
    """POST like a browser does: with the token from the cookie a page set (every page has the logout form)."""
    client.get(reverse("home"))
    token = client.cookies["csrftoken"].value
    return client.post(url, {**(data or {}), "csrfmiddlewaretoken": token})


def write_fleet(repo: WorkRepo, env: str, machines: int, *, start: int = 0) -> None:
    """An environment of ``machines`` machines, two applications each; every third one lacks a README."""
    repo.write(f"{env}/README.md", f"# {env}\n\nA fleet of machines.\n")
    repo.write(f"{env}/_common/README.md", "# Shared\n")
    for i in range(start, start + machines):
        name = f"{env}/node{i:04d}"
        if i % 3:
            repo.write(f"{name}/README.md", f"# node{i:04d}\n\nA worker node.\n")
        for app in ("agent", "nginx"):
            repo.write(f"{name}/{app}/README.md", f"# {app}\n")
            repo.write(f"{name}/{app}/files/etc/{app}.conf", f"# {app} on node{i:04d}\nworkers = {i}\n")
