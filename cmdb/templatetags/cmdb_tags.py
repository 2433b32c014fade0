"""Small presentation tags of the browser UI (badges, navigation state); no database access."""

from __future__ import annotations

from django import template
from django.utils.html import escape, format_html
from django.utils.safestring import mark_safe

register = template.Library()

KINDS = {
    "root": ("Repository", "bi-diagram-3", "text-bg-dark"),
    "environment": ("Environment", "bi-globe2", "text-bg-primary"),
    "machine": ("Machine", "bi-hdd-rack", "text-bg-info"),
    "application": ("Application", "bi-box-seam", "text-bg-success"),
    "common": ("Common", "bi-share", "text-bg-secondary"),
}
SEVERITIES = {
    "error": ("Error", "bi-x-octagon-fill", "text-bg-danger"),
    "warning": ("Warning", "bi-exclamation-triangle-fill", "text-bg-warning"),
    "info": ("Info", "bi-info-circle-fill", "text-bg-light border"),
}
RUN_STATUSES = {
    "running": ("Running", "bi-arrow-repeat", "text-bg-info"),
    "succeeded": ("Succeeded", "bi-check-circle-fill", "text-bg-success"),
    "failed": ("Failed", "bi-x-circle-fill", "text-bg-danger"),
}
DIFF_STATUSES = {
    "A": ("Added", "text-bg-success"),
    "D": ("Deleted", "text-bg-danger"),
    "M": ("Modified", "text-bg-warning"),
    "T": ("Type changed", "text-bg-secondary"),
}


def badge(label: str, icon: str, css: str, extra: str = ""):
    return format_html('<span class="badge {} {}"><i class="bi {}" aria-hidden="true"></i> {}</span>',
                       css, extra, icon, label)


@register.simple_tag
def kind_badge(kind: str):
    label, icon, css = KINDS.get(kind, (kind or "?", "bi-folder", "text-bg-light border"))
    return badge(label, icon, css, "kind-badge")


@register.simple_tag
def kind_icon(kind: str):
    return format_html('<i class="bi {} kind-icon kind-{}" aria-hidden="true"></i>',
                       KINDS.get(kind, ("", "bi-folder", ""))[1], kind)


@register.simple_tag
def severity_badge(severity: str):
    label, icon, css = SEVERITIES.get(severity, (severity, "bi-question-circle", "text-bg-light border"))
    return badge(label, icon, css, "severity-badge")


@register.simple_tag
def run_status_badge(status: str):
    label, icon, css = RUN_STATUSES.get(status, (status, "bi-question-circle", "text-bg-light border"))
    return badge(label, icon, css)


@register.simple_tag
def diff_status_badge(status: str):
    label, css = DIFF_STATUSES.get(status, (status, "text-bg-light border"))
    return format_html('<span class="badge {}">{}</span>', css, label)


@register.simple_tag(takes_context=True)
def nav_active(context, *names: str) -> str:
    """``active`` when the current URL's name is one of ``names`` (for the navbar)."""
    request = context.get("request")
    match = getattr(request, "resolver_match", None)
    return "active" if match is not None and match.url_name in names else ""


@register.filter
def short_sha(value: str) -> str:
    return (value or "")[:10]


@register.filter
def path_wbr(value: str):
    """A repository path that may wrap after its slashes (and only there) on narrow screens."""
    return mark_safe(escape(value or "").replace("/", "/<wbr>"))  # noqa: S308 - escaped first
