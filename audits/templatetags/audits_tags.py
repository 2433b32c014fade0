"""Template helpers of audits on other pages: ``{% load audits_tags %}``.

``{% compliance_chart status.environments "home" %}`` draws the compliance trend as inline SVG from
figures the page already holds (no query), so the home page shows it without its view knowing how.
"""

from __future__ import annotations

from django import template

from audits.charts import compliance_chart as build_chart

register = template.Library()


@register.inclusion_tag("audits/_compliance_chart.html")
def compliance_chart(environments, chart_id: str = "compliance") -> dict:
    """``environments`` as :func:`audits.queries.status_overview` gives them; ``chart_id`` keeps the
    ids of two charts on one page apart."""
    return {"chart": build_chart(list(environments or [])), "chart_id": chart_id}
