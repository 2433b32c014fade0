"""Badges of the change-control UI (states, types, risks, votes, record entries); no database access.

Built with cmdb's badge helper so both apps' badges look alike.
"""

from __future__ import annotations

from django import template
from django.utils.html import format_html

from cmdb.templatetags.cmdb_tags import badge

register = template.Library()

STATES = {
    "draft": ("Draft", "bi-pencil", "text-bg-light border"),
    "submitted": ("Submitted", "bi-hourglass-split", "text-bg-info"),
    "approved": ("Approved", "bi-check-circle", "text-bg-success"),
    "rejected": ("Rejected", "bi-x-circle", "text-bg-danger"),
    "scheduled": ("Scheduled", "bi-calendar-event", "text-bg-primary"),
    "implemented": ("Implemented", "bi-rocket-takeoff", "text-bg-dark"),
    "verified": ("Verified", "bi-patch-check", "text-bg-success"),
    "closed": ("Closed", "bi-archive", "text-bg-secondary"),
    "withdrawn": ("Withdrawn", "bi-arrow-counterclockwise", "text-bg-secondary"),
}
TYPES = {
    "standard": ("Standard", "bi-card-checklist", "text-bg-light border"),
    "normal": ("Normal", "bi-arrow-left-right", "text-bg-light border"),
    "emergency": ("Emergency", "bi-lightning-charge-fill", "text-bg-danger"),
}
RISKS = {
    "low": ("Low risk", "bi-shield-check", "text-bg-light border text-success-emphasis"),
    "medium": ("Medium risk", "bi-shield-exclamation", "text-bg-warning"),
    "high": ("High risk", "bi-shield-fill-exclamation", "text-bg-danger"),
}
DECISIONS = {
    "approve": ("Approved", "bi-hand-thumbs-up-fill", "text-bg-success"),
    "reject": ("Rejected", "bi-hand-thumbs-down-fill", "text-bg-danger"),
}
UNAUTHORIZED = {
    "open": ("Open", "bi-exclamation-octagon-fill", "text-bg-danger"),
    "linked": ("Linked", "bi-link-45deg", "text-bg-success"),
    "acknowledged": ("Acknowledged", "bi-check2-square", "text-bg-secondary"),
}
# ChangeEvent.action -> (label, icon, colour class of the timeline dot)
EVENTS = {
    "created": ("opened the change request", "bi-plus-circle", "text-primary"),
    "edited": ("edited", "bi-pencil", "text-secondary"),
    "submitted": ("submitted for approval", "bi-send", "text-info"),
    "vote-approve": ("approved", "bi-hand-thumbs-up", "text-success"),
    "vote-reject": ("voted to reject", "bi-hand-thumbs-down", "text-danger"),
    "approved": ("— the change request is approved", "bi-check-circle-fill", "text-success"),
    "approved-after-the-fact": ("— approved after the fact", "bi-check-circle-fill", "text-success"),
    "rejected": ("— the change request is rejected", "bi-x-circle-fill", "text-danger"),
    "scheduled": ("scheduled", "bi-calendar-event", "text-primary"),
    "merged": ("released to main", "bi-rocket-takeoff", "text-dark"),
    "emergency-unapproved": ("released before approval", "bi-lightning-charge-fill", "text-danger"),
    "verified": ("verified", "bi-patch-check", "text-success"),
    "closed": ("closed", "bi-archive", "text-secondary"),
    "withdrawn": ("withdrew", "bi-arrow-counterclockwise", "text-secondary"),
    "commented": ("commented", "bi-chat-left-text", "text-secondary"),
    "branch-moved": ("Branch moved", "bi-signpost-split", "text-warning"),
    "branch-missing": ("Branch gone from origin", "bi-exclamation-triangle", "text-warning"),
    "unauthorized-linked": ("linked an unauthorized commit", "bi-link-45deg", "text-warning"),
    "unauthorized-acknowledged": ("acknowledged an unauthorized commit", "bi-check2-square", "text-warning"),
    "revert-opened": ("opened a change request reverting this release", "bi-arrow-return-left", "text-warning"),
}


def _lookup(table: dict, value: str, extra: str):
    label, icon, css = table.get(value, (value or "?", "bi-question-circle", "text-bg-light border"))
    return badge(label, icon, css, extra)


@register.simple_tag
def state_badge(state: str):
    return _lookup(STATES, state, f"state-badge state-{state}")


@register.simple_tag
def type_badge(kind: str):
    return _lookup(TYPES, kind, "type-badge")


@register.simple_tag
def risk_badge(risk: str, short: bool = False):
    """``Medium risk``; ``short=True`` for a column headed "Risk": ``Medium``."""
    label, icon, css = RISKS.get(risk, (risk or "?", "bi-question-circle", "text-bg-light border"))
    return badge(label.removesuffix(" risk") if short else label, icon, css, "risk-badge")


@register.simple_tag
def decision_badge(decision: str):
    return _lookup(DECISIONS, decision, "decision-badge")


@register.simple_tag
def unauthorized_badge(status: str):
    return _lookup(UNAUTHORIZED, status, "unauthorized-badge")


@register.simple_tag
def event_icon(action: str):
    _, icon, css = EVENTS.get(action, ("", "bi-dot", "text-secondary"))
    return format_html('<i class="bi {} {} timeline-icon" aria-hidden="true"></i>', icon, css)


@register.filter
def event_label(action: str) -> str:
    return EVENTS.get(action, (action.replace("-", " "), "", ""))[0]
