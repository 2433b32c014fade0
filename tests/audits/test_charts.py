"""The compliance chart: inline SVG geometry (values to coordinates, gaps, scales), its text for people
who cannot see colour or the chart at all, and the pages that show it (home, audits) at a fixed cost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.template.loader import render_to_string
from django.urls import reverse

from audits.charts import DASHES, SHAPES, compliance_chart
from audits.models import AuditRun, MachineStatus

T0 = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)


def env(name, *values, first_run=1):
    return {"environment": name, "trend": [{"run": first_run + i, "at": T0 + timedelta(days=30 * (first_run + i)),
                                            "compliance": v} for i, v in enumerate(values)]}


def render(environments, chart_id="t"):
    return render_to_string("audits/_compliance_chart.html",
                            {"chart": compliance_chart(environments), "chart_id": chart_id})


def test_values_map_to_coordinates_on_a_scale_starting_at_the_tens_below_the_lowest():
    chart = compliance_chart([env("prod", 100.0, 75.0, 54.0)])
    assert chart.lower == 50 and [t for t, _ in chart.y_ticks] == [50, 60, 70, 80, 90, 100]
    top, bottom = chart.plot_top, chart.plot_bottom
    prod = chart.series[0]
    assert [p.x for p in prod.points] == [chart.plot_left, (chart.plot_left + chart.plot_right) / 2, chart.plot_right]
    assert prod.points[0].y == top
    assert prod.points[1].y == pytest.approx(top + (bottom - top) * 25 / 50, abs=0.1)
    assert prod.points[2].y == pytest.approx(top + (bottom - top) * 46 / 50, abs=0.1)
    assert prod.path == "".join(f"{'M' if i == 0 else 'L'}{p.x} {p.y}" for i, p in enumerate(prod.points))
    assert prod.last_value == 54.0
    assert dict(chart.y_ticks)[100] == top and dict(chart.y_ticks)[50] == bottom


def test_a_lower_compliance_is_drawn_lower():
    chart = compliance_chart([env("prod", 100.0, 22.2)])
    first, last = chart.series[0].points
    assert last.y > first.y and chart.lower == 20


def test_no_run_draws_no_chart_but_says_so():
    chart = compliance_chart([])
    assert chart.empty and chart.series == [] and chart.summary == "No finished audit yet."
    html = render([])
    assert "data-chart-empty" in html and "<svg" not in html


def test_one_run_is_a_single_marker_in_the_middle():
    chart = compliance_chart([env("prod", 80.0)])
    (point,) = chart.series[0].points
    assert point.x == (chart.plot_left + chart.plot_right) / 2
    assert chart.series[0].path == f"M{point.x} {point.y}"
    assert len(chart.runs) == 1 and chart.runs[0]["label"]


def test_everything_at_100_percent_still_has_a_scale():
    chart = compliance_chart([env("prod", 100.0, 100.0), env("test", 100.0, 100.0)])
    assert chart.lower == 90 and [t for t, _ in chart.y_ticks] == [90, 95, 100]
    assert all(p.y == chart.plot_top for s in chart.series for p in s.points)
    # Equal last values: their labels are pushed apart, not drawn over each other.
    a, b = (s.label_y for s in chart.series)
    assert abs(a - b) >= 12


def test_no_machine_audited_automatically_breaks_the_line_and_reads_n_a():
    chart = compliance_chart([env("prod", 90.0, None, 80.0, 85.0), env("lab", None, None)])
    prod, lab = chart.series
    assert prod.path.count("M") == 2 and prod.path.count("L") == 1
    assert [p.value for p in prod.points] == [90.0, 80.0, 85.0]
    assert lab.points == [] and lab.path == "" and lab.last is None
    assert "lab: no machine audited automatically" in chart.summary
    html = render([env("prod", 90.0, None, 80.0, 85.0), env("lab", None, None)])
    assert html.count("<td>n/a</td>") == 5  # prod once; lab in all four runs


def test_runs_of_one_environment_leave_the_others_without_a_point_there():
    chart = compliance_chart([env("prod", 100.0, 90.0, 80.0), env("test", 70.0, first_run=2)])
    assert [r["run"] for r in chart.runs] == [1, 2, 3]
    (point,) = chart.series[1].points
    assert point.x == chart.runs[1]["x"] and [r["values"][1] for r in chart.runs] == [None, 70.0, None]


def test_every_environment_has_its_own_pattern_and_marker_and_the_legend_shows_them():
    names = [f"env{i}" for i in range(7)]
    chart = compliance_chart([env(n, 100.0 - i, 99.0 - i) for i, n in enumerate(names)])
    looks = [(s.dash, s.shape) for s in chart.series]
    assert len(set(looks)) == 7 and {s.dash for s in chart.series[:6]} == set(DASHES)
    assert {s.shape for s in chart.series[:5]} == set(SHAPES)
    html = render([env(n, 100.0 - i, 99.0 - i) for i, n in enumerate(names)])
    for s in chart.series:
        assert f'data-legend="{s.environment}"' in html
        if s.dash:
            assert f'stroke-dasharray="{s.dash}"' in html
        assert s.legend_marker in html


def test_the_chart_is_an_image_with_a_description_and_a_data_table():
    html = render([env("prod", 100.0, 54.5), env("test", 100.0, 100.0)], chart_id="home")
    assert 'role="img"' in html and 'aria-labelledby="home-chart-title home-chart-desc"' in html
    assert '<desc id="home-chart-desc">Compliance over the last 2 audit(s); prod: from 100% to 54.5%; ' \
           'test: from 100% to 100%.</desc>' in html
    assert '<table class="visually-hidden" data-chart-table>' in html
    assert "<th scope=\"col\">prod</th><th scope=\"col\">test</th>" in html
    assert "<td>100%</td><td>100%</td>" in html and "<td>54.5%</td><td>100%</td>" in html
    assert 'data-last="54.5"' in html and ">54.5%</text>" in html
    assert "viewBox=\"0 0 480 220\"" in html and "style=" not in html  # no inline style: the CSP forbids it


def test_many_runs_label_only_some_dates_but_always_the_newest():
    chart = compliance_chart([env("prod", *[100.0 - i for i in range(12)])])
    labelled = [r for r in chart.runs if r["label"]]
    assert chart.runs[-1]["label"] and len(labelled) <= 6


def _finished_run(at, envs: dict[str, float | None], state=AuditRun.State.SUCCEEDED) -> AuditRun:
    return AuditRun.objects.create(state=state, created_at=at, finished_at=at, summary={
        "compliance": None, "environments": {n: {"compliance": v} for n, v in envs.items()}})


@pytest.mark.django_db
def test_the_audits_page_draws_the_trend_at_a_fixed_cost(viewer, client_for, django_assert_num_queries):
    client = client_for(viewer)
    url = reverse("audits:audit_list")
    _finished_run(T0, {"prod": 100.0, "test": 100.0})
    client.get(url)
    # session, user, runs count and page, trend runs, nav groups
    with django_assert_num_queries(6):
        small = client.get(url)
    assert small.status_code == 200
    for i in range(1, 20):
        _finished_run(T0 + timedelta(days=i), {"prod": 100.0 - i, "test": None if i % 2 else 100.0})
    AuditRun.objects.create(state=AuditRun.State.FAILED, created_at=T0 + timedelta(days=30))
    with django_assert_num_queries(6):
        response = client.get(url)
    html = response.content.decode()
    assert 'id="audits-chart" data-runs="12"' in html
    assert 'data-legend="prod"' in html and 'data-last="81.0"' in html


@pytest.mark.django_db
def test_the_home_page_shows_the_chart_of_the_environments_it_accounts_for(viewer, client_for):
    _finished_run(T0, {"prod": 100.0, "gone": 50.0})
    _finished_run(T0 + timedelta(days=30), {"prod": 40.0, "gone": 50.0})
    MachineStatus.objects.create(machine_path="prod/web1", environment="prod", status="drifted", compliance=40.0)
    html = client_for(viewer).get(reverse("home")).content.decode()
    assert 'id="home-chart" data-runs="2"' in html and 'data-legend="prod"' in html
    assert 'data-legend="gone"' not in html  # no machine of it is accounted for any more
    assert 'data-last="40.0"' in html
