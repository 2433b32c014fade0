"""The one Markdown renderer: features on, hostile HTML off, relative links into the portal."""

from __future__ import annotations

import pytest

from cmdb.markdown import render_markdown

HOSTILE = """# Title
<script>alert('x')</script>
<img src="x.png" onerror="alert(1)">
<a href="javascript:alert(1)">click</a>
[md link](javascript:alert(2))
<iframe src="https://evil.example"></iframe>
<div style="background:url(javascript:alert(3))" onclick="alert(4)">div</div>
<svg><script>alert(5)</script></svg>
<object data="x"></object><embed src="y"><form action="/x"><input name="a"></form>
"""


def resolver(kind, path):
    return f"/{kind}/{path}"


def test_hostile_html_renders_harmless():
    html = render_markdown(HOSTILE, base_dir="production", resolver=resolver).lower()
    for forbidden in ("<script", "onerror", "onclick", "javascript:", "<iframe", "<object", "<embed", "<form", "style="):
        assert forbidden not in html, forbidden
    assert "<h1" in html and "title" in html


@pytest.mark.parametrize(
    "markdown, expected",
    [
        ("[shared](../_common/README.md)", 'href="/page/_common"'),
        ("[shared](_common/README.md)", 'href="/page/production/_common"'),
        ("[machine](web1/)", 'href="/page/production/web1"'),
        ("[conf](web1/nginx/files/a.conf)", 'href="/file/production/web1/nginx/files/a.conf"'),
        ("![topology](topology.svg)", 'src="/raw/production/topology.svg"'),
        ("[section](../README.md#install)", 'href="/page/#install"'),
        ("[ext](https://example.org/x)", 'href="https://example.org/x"'),
        ("[escape](../../../../etc/passwd)", 'href="#"'),
    ],
)
def test_relative_links_resolve_into_the_portal(markdown, expected):
    assert expected in render_markdown(markdown, base_dir="production", resolver=resolver)


def test_tables_fenced_code_highlighting_and_toc_ids():
    text = "## Install steps\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\nimport os\n```\n"
    html = render_markdown(text, base_dir="", resolver=resolver)
    assert "<table>" in html
    assert 'class="highlight"' in html and '<span class="kn">import</span>' in html
    assert 'id="md-install-steps"' in html


def test_without_a_resolver_relative_links_are_neutralised():
    assert 'href="#"' in render_markdown("[x](other/README.md)")
