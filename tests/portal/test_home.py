"""The home page (status accounting): what it shows and what it costs."""

from __future__ import annotations

from django.urls import reverse

from changes import services
from cmdb.models import LintWarning
from tests.gitutil import on_branch


def html(response) -> str:
    return response.content.decode().replace("<wbr>", "")


def test_home_shows_counts_environments_recent_commits_and_lint_summary(synced, viewer, client_for):
    response = client_for(viewer).get(reverse("home"))
    counts = {c["kind"]: c["n"] for c in response.context["counts"]}
    assert counts == {"environment": 2, "machine": 3, "application": 3, "common": 1, "artifact": 7,
                      "warning": LintWarning.objects.count()}
    assert [e["name"] for e in response.context["env_cards"]] == ["production", "test"]
    assert response.context["env_cards"][0]["machines"] == 2
    assert [c["summary"] for c in response.context["commits"]] == ["Initial layout"]
    html = response.content.decode()
    assert synced.head()[:10] in html
    assert 'action="/search/"' in html


def test_home_card_counts_open_changes_pending_votes_and_unauthorized_commits(direct_push,
        synced, tls_branch, test_branch, make_change, requester, approver, viewer, client_for):
    submitted = services.change_submit(change=make_change(tls_branch, title="Harden TLS"), acting_user=requester)
    make_change(test_branch)
    flagged = direct_push(synced)

    page = html(client_for(approver).get(reverse("home")))
    card = page.split("change-control-card")[1].split("</section>")[0]
    assert '<span class="fw-semibold" data-state="draft">1</span>' in card
    assert '<span class="fw-semibold" data-state="submitted">1</span>' in card
    assert f'href="{submitted.get_absolute_url()}">{submitted.reference}</a> Harden TLS' in card
    assert flagged.sha[:10] in card and reverse("changes:unauthorized_list") in card

    services.change_approve(change=submitted, acting_user=approver)
    card = html(client_for(approver).get(reverse("home"))).split("change-control-card")[1].split("</section>")[0]
    assert "Nothing awaits your vote." in card  # voted on this head
    viewer_card = html(client_for(viewer).get(reverse("home"))).split("change-control-card")[1]
    assert "Nothing awaits your vote." in viewer_card.split("</section>")[0]


def test_home_card_costs_a_fixed_number_of_queries(direct_push, synced, test_branch, make_change, requester, approver, client_for,
                                                   django_assert_num_queries):
    client = client_for(approver)
    client.get(reverse("home"))
    # Session, user, the sync state (context processor); kinds, artifacts, lint summary, last run,
    # environments, indexed sha (recent commits); change control: open CRs per state, the user's
    # groups, CRs awaiting the approver, open unauthorized commits and their count; status accounting
    # (audits.queries.status_overview): machine statuses per environment, overdue checks, open CRs per
    # environment, last runs' trend, last audit, last sync, open CRs, unauthorized commits; the verdict
    # (portal.status): released change requests with their deploys, the last full audit
    with django_assert_num_queries(22):
        client.get(reverse("home"))
    for i in range(4):
        on_branch(synced, f"change/h{i}", {f"test/web-test1/nginx/files/h{i}.conf": "x\n"})
        services.change_submit(change=make_change(f"change/h{i}"), acting_user=requester)
    direct_push(synced)
    direct_push(synced, "Another direct push")
    with django_assert_num_queries(22):
        response = client.get(reverse("home"))
    assert len(response.context["change_control"]["awaiting"]) == 4
