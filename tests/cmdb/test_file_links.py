"""Links found by crawling every page: a file's commits lead back to the file, and a file path is never
shown as a configuration item, at the indexed revision or at any other."""

from __future__ import annotations

from django.urls import reverse

from cmdb import services
from tests.cmdb.ui import ci_url

README = "production/db1/README.md"  # depth 3: where an application folder would be


def test_a_commit_seen_from_a_file_links_to_that_file_at_the_commit(synced, viewer, client_for):
    sha = synced.head()
    response = client_for(viewer).get(reverse("cmdb:commit_detail", kwargs={"sha": sha}), {"path": README})
    assert response.status_code == 200
    file_url = reverse("cmdb:artifact_detail", kwargs={"path": README}) + f"?rev={sha}"
    assert f'href="{file_url}"><i class="bi bi-box-arrow-up-right"' in response.content.decode()
    assert ci_url(README) not in response.content.decode()
    assert client_for(viewer).get(file_url).status_code == 200


def test_a_commit_seen_from_a_deleted_file_links_to_its_configuration_item(synced, viewer, client_for):
    synced.remove(README)
    sha = synced.commit("Drop the README")
    services.repo_sync(trigger="test")
    response = client_for(viewer).get(reverse("cmdb:commit_detail", kwargs={"sha": sha}), {"path": README})
    assert response.status_code == 200
    assert f'href="{ci_url("production/db1")}?rev={sha}"' in response.content.decode()


def test_a_file_is_not_a_configuration_item_at_any_revision(synced, viewer, client_for):
    client = client_for(viewer)
    sha = synced.head()  # an older revision than the indexed one: read from Git, not from the index
    synced.write("production/db1/postgresql/files/etc/postgresql/postgresql.conf", "shared_buffers = 2GB\n")
    synced.commit("Tune")
    services.repo_sync(trigger="test")
    assert client.get(ci_url(README)).status_code == 404
    assert client.get(ci_url(README), {"rev": sha}).status_code == 404
    assert client.get(ci_url("production/db1"), {"rev": sha}).status_code == 200
