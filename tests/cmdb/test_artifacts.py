"""Files: the artifact page (highlighting, images, binaries, symlinks, big files), the raw endpoint and its
headers, and secrets masked everywhere for people who may not see them."""

from __future__ import annotations

import pytest
from django.urls import reverse

from cmdb import services
from cmdb.secrets import MASK
from tests.cmdb.ui import ci_url, readme_html, text
from tests.gitutil import write_standard_layout

APP = "production/web1/nginx"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89" + b"\x00" * 16
KEY_LINES = [f"MIIEv{i:02d}QIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQC7{i:02d}" for i in range(30)]


def private_key(lines=KEY_LINES) -> str:
    return "-----BEGIN PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END PRIVATE KEY-----\n"


def file_url(path: str, **query) -> str:
    url = reverse("cmdb:artifact_detail", kwargs={"path": path})
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def raw_url(path: str, **query) -> str:
    url = reverse("cmdb:raw", kwargs={"path": path})
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


@pytest.fixture
def files_repo(work_repo, db):
    """The standard layout plus every kind of file an application can hold."""
    write_standard_layout(work_repo)
    work_repo.write(f"{APP}/files/etc/ssl/server.key", private_key(KEY_LINES[:3]))  # secret by name
    work_repo.write(f"{APP}/files/etc/ssl/bundle.pem", "# bundle\n" + private_key())  # secret by content
    work_repo.write(f"{APP}/files/www/logo.png", PNG)
    work_repo.write(f"{APP}/files/www/blob.bin", b"\x00\x01\x02binary\x00" * 10)
    work_repo.write(f"{APP}/files/www/index.html", "<html><body><script>alert(1)</script></body></html>\n")
    work_repo.write(f"{APP}/files/www/sitemap.xml", "<?xml version='1.0'?><urlset/>\n")
    work_repo.write(f"{APP}/files/var/log/big.log", "".join(f"line {i:07d} of a big log file\n" for i in range(40_000)))
    work_repo.symlink(f"{APP}/files/etc/passwd-link", "/etc/passwd")
    work_repo.commit("Files of every kind")
    services.repo_sync(trigger="test")
    return work_repo


# --- the artifact page ----------------------------------------------------------------------------------


def test_text_file_is_highlighted_with_line_numbers(synced, viewer, client_for):
    response = client_for(viewer).get(file_url(f"{APP}/files/etc/nginx/nginx.conf"))
    html = response.content.decode()
    assert response.status_code == 200
    assert '<div class="highlight">' in html and 'class="linenos"' in html
    assert 'id="L-1"' in html and 'href="#L-1"' in html
    assert '<span class="k">worker_processes</span>' in html  # the nginx lexer was picked by file name
    assert [c.label for c in response.context["breadcrumbs"]] == ["Repository", "production", "web1", "nginx"]
    assert 'href="/raw/production/web1/nginx/files/etc/nginx/nginx.conf?download=1"' in html


def test_file_page_at_an_older_revision_shows_the_old_content(synced, viewer, client_for):
    old = synced.head()
    synced.write(f"{APP}/files/etc/nginx/nginx.conf", "worker_processes 16;\n")
    synced.commit("More workers")
    services.repo_sync(trigger="test")
    client = client_for(viewer)
    path = f"{APP}/files/etc/nginx/nginx.conf"
    assert b"16" in client.get(file_url(path)).content
    then = client.get(file_url(path, rev=old))
    assert b'<span class="mi">4</span>' in then.content and b'<span class="mi">16</span>' not in then.content
    assert f'href="/raw/{path}?rev={old}"'.encode() in then.content
    assert client.get(raw_url(path, rev=old)).content == b"worker_processes 4;\nevents { worker_connections 1024; }\n"
    assert [c["summary"] for c in then.context["history"]] == ["Initial layout"]


def test_large_file_is_truncated_with_a_download_link(files_repo, viewer, client_for, settings):
    assert settings.CMDB_MAX_VIEW_BYTES == 1024 * 1024
    response = client_for(viewer).get(file_url(f"{APP}/files/var/log/big.log"))
    html = response.content.decode()
    assert response.context["view"].truncated is True
    assert "only its first 1.0\xa0MB are shown" in html
    assert f'href="/raw/{APP}/files/var/log/big.log?download=1">Download the whole file' in html
    assert "line 0000000 of" in html and "line 0039999 of" not in html  # the file is 1.2 MB


def test_binary_file_is_download_only(files_repo, viewer, client_for):
    client = client_for(viewer)
    response = client.get(file_url(f"{APP}/files/www/blob.bin"))
    html = response.content.decode()
    assert response.context["view"].mode == "binary"
    assert "cannot be shown in the browser" in html and 'class="code-view"' not in html
    assert f'href="/raw/{APP}/files/www/blob.bin?download=1"' in html
    raw = client.get(raw_url(f"{APP}/files/www/blob.bin"))
    assert raw["Content-Type"] == "application/octet-stream"
    assert raw["Content-Disposition"] == 'attachment; filename="blob.bin"'  # download=1 or not: never shown


def test_image_is_shown_from_the_raw_endpoint(files_repo, viewer, client_for):
    response = client_for(viewer).get(file_url(f"{APP}/files/www/logo.png"))
    assert response.context["view"].mode == "image"
    assert f'<img src="/raw/{APP}/files/www/logo.png"'.encode() in response.content


def test_symlink_shows_its_target_and_is_never_followed(files_repo, viewer, client_for):
    client = client_for(viewer)
    response = client.get(file_url(f"{APP}/files/etc/passwd-link"))
    assert response.context["view"].mode == "symlink"
    assert b'<code class="symlink-target">/etc/passwd</code>' in response.content
    raw = client.get(raw_url(f"{APP}/files/etc/passwd-link"))
    assert raw.content == b"/etc/passwd" and raw["Content-Type"] == "text/plain; charset=utf-8"
    listing = client.get(ci_url(APP))
    assert "passwd-link</a>" in text(listing) and "→ <span class=\"font-monospace\">/etc/passwd</span>" in text(listing)


def test_missing_file_is_404_and_a_folder_redirects_to_its_page(synced, viewer, client_for):
    client = client_for(viewer)
    assert client.get(file_url(f"{APP}/files/nope.conf")).status_code == 404
    assert client.get(raw_url(f"{APP}/files/nope.conf")).status_code == 404
    folder = client.get(file_url("production/web1"))
    assert folder.status_code == 302 and folder["Location"] == "/ci/production/web1/"


# --- the raw endpoint -----------------------------------------------------------------------------------


def test_raw_endpoint_serves_blobs_with_their_type_and_safe_headers(files_repo, viewer, client_for):
    client = client_for(viewer)
    svg = client.get(raw_url("production/topology.svg"))
    assert svg.status_code == 200
    assert svg["Content-Type"] == "image/svg+xml; charset=utf-8"
    assert svg["X-Content-Type-Options"] == "nosniff"
    assert svg["Content-Security-Policy"] == "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox"
    assert svg["Content-Disposition"].startswith("attachment")  # XML: never rendered as a page
    assert svg.content.startswith(b"<svg")

    png = client.get(raw_url(f"{APP}/files/www/logo.png"))
    assert png["Content-Type"] == "image/png" and "Content-Disposition" not in png
    assert png.content == PNG

    conf = client.get(raw_url(f"{APP}/files/etc/nginx/nginx.conf"))
    assert conf["Content-Type"] == "text/plain; charset=utf-8" and "Content-Disposition" not in conf
    assert conf["X-Content-Type-Options"] == "nosniff" and "sandbox" in conf["Content-Security-Policy"]

    for name in ("index.html", "sitemap.xml"):
        active = client.get(raw_url(f"{APP}/files/www/{name}"))
        assert active["Content-Disposition"] == f'attachment; filename="{name}"', name
        assert active["X-Content-Type-Options"] == "nosniff"

    download = client.get(raw_url(f"{APP}/files/etc/nginx/nginx.conf", download=1))
    assert download["Content-Disposition"] == 'attachment; filename="nginx.conf"'


# --- secrets --------------------------------------------------------------------------------------------

SECRETS = {
    f"{APP}/secrets/htpasswd": b"admin:$apr1$abc$def",  # secret by .cmdb-secrets pattern
    f"{APP}/files/etc/ssl/server.key": KEY_LINES[1].encode(),  # by name
    f"{APP}/files/etc/ssl/bundle.pem": KEY_LINES[7].encode(),  # by content
}


def test_secret_files_are_masked_for_viewers(files_repo, viewer, client_for):
    client = client_for(viewer)
    for path, content in SECRETS.items():
        page = client.get(file_url(path))
        assert page.status_code == 200, path
        assert content not in page.content, path
        assert page.context["view"].mode == "masked" and "(secret: masked)" in page.content.decode(), path
        assert b"?download=1" not in page.content, path
        assert client.get(raw_url(path)).status_code == 403, path
        assert client.get(raw_url(path, download=1)).status_code == 403, path
    listing = client.get(ci_url(APP))
    flagged = {a.path for a in listing.context["artifacts"] if a.is_secret}
    assert flagged == set(SECRETS)
    assert all(a.raw_url is None for a in listing.context["artifacts"] if a.is_secret)


def test_secret_files_are_shown_to_people_allowed_to_see_secrets(files_repo, secret_viewer, client_for):
    client = client_for(secret_viewer)
    for path, content in SECRETS.items():
        page = client.get(file_url(path))
        assert content in page.content, path
        raw = client.get(raw_url(path))
        assert raw.status_code == 200 and content in raw.content, path


def test_secret_changes_are_masked_in_diffs_even_where_the_hunk_shows_no_key_marker(
    files_repo, viewer, secret_viewer, client_for
):
    lines = list(KEY_LINES)
    lines[15] = "CHANGEDv15QIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQC7xx"
    files_repo.write(f"{APP}/files/etc/ssl/bundle.pem", "# bundle\n" + private_key(lines))  # a mid-file hunk
    files_repo.write(f"{APP}/secrets/htpasswd", "admin:$apr1$new$hash\n")
    files_repo.write(f"{APP}/files/etc/nginx/nginx.conf", "worker_processes 2;\n")
    sha = files_repo.commit("Rotate secrets")
    services.repo_sync(trigger="test")
    urls = [reverse("cmdb:commit_detail", kwargs={"sha": sha}), ci_url(APP, "compare"),
            ci_url(APP, "compare") + "?from=HEAD~1&to=main"]

    for url in urls:
        response = client_for(viewer).get(url)
        html = response.content.decode()
        masked = {d.path for d in response.context["diffs"] if d.masked}
        assert masked == {f"{APP}/files/etc/ssl/bundle.pem", f"{APP}/secrets/htpasswd"}, url
        for leak in ("CHANGEDv15", KEY_LINES[15], KEY_LINES[14], "$apr1$new$hash", "$apr1$abc$def"):
            assert leak not in html, (url, leak)
        assert MASK in html and "worker_processes 2;" in html

    allowed = client_for(secret_viewer).get(urls[0]).content.decode()
    assert "CHANGEDv15" in allowed and "$apr1$new$hash" in allowed


def test_private_key_pasted_into_an_ordinary_file_is_masked_in_its_diff(synced, viewer, client_for):
    synced.write(f"{APP}/files/etc/nginx/notes.txt", "remember this:\n" + private_key(KEY_LINES[:4]))
    sha = synced.commit("Oops")
    services.repo_sync(trigger="test")
    response = client_for(viewer).get(reverse("cmdb:commit_detail", kwargs={"sha": sha}))
    assert KEY_LINES[2] not in response.content.decode()
    assert [d.masked for d in response.context["diffs"]] == [True]


def test_private_key_pasted_into_a_readme_is_masked_for_viewers(synced, viewer, secret_viewer, client_for):
    synced.write(f"{APP}/README.md", "# nginx\n\nThe key:\n\n    " + private_key(KEY_LINES[:3]).replace("\n", "\n    ") + "\nDone.\n")
    synced.commit("Key in README")
    services.repo_sync(trigger="test")
    masked = readme_html(client_for(viewer).get(ci_url(APP)))
    assert KEY_LINES[1] not in masked and MASK in masked and "Done." in masked
    assert KEY_LINES[1] in readme_html(client_for(secret_viewer).get(ci_url(APP)))
