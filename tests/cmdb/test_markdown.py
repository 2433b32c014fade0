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


OVERLAY = '<div class="position-fixed top-0 start-0 w-100 h-100 bg-white">Fake login</div>'


@pytest.mark.parametrize("hostile", [
    OVERLAY,
    '<span class="position-absolute top-0 w-100 h-100 modal-backdrop show">x</span>',
    '<div class="highlight fixed-top">x</div>',
    '<p style="position:fixed;top:0;left:0;width:100%;height:100%">x</p>',
    '<pre class="position-fixed">x</pre>',
    '<code class="position-fixed">x</code>',
])
def test_readme_html_cannot_position_itself_over_the_page(hostile):
    html = render_markdown(hostile)
    for word in ("position-", "fixed", "top-0", "w-100", "h-100", "modal", "style="):
        assert word not in html, (word, html)


def test_highlighter_classes_survive_and_nothing_else():
    html = render_markdown("```python\nimport os\n```\n")
    assert 'class="highlight"' in html and '<span class="kn">' in html


@pytest.mark.parametrize("raw", ['<h2 id="portal-nav">x</h2>', '<h3 id="main">x</h3>', '<h1 id="csrf">x</h1>'])
def test_every_id_is_prefixed_so_no_readme_element_takes_a_page_id(raw):
    html = render_markdown(raw)
    assert 'id="md-' in html
    for page_id in ('id="portal-nav"', 'id="main"', 'id="csrf"'):
        assert page_id not in html


def test_in_page_anchors_follow_the_prefixed_ids():
    html = render_markdown('# Install\n\n[go](#install) <a href="#install">raw</a> <h2 id="x">X</h2> [x](#x)')
    assert 'id="md-install"' in html and 'id="md-x"' in html
    assert html.count('href="#md-install"') == 2 and 'href="#md-x"' in html


RUNBOOK = """1. Rebuild the web server:

    ```bash
    apt-get install nginx
    systemctl restart nginx
    ```

2. Check it answers.
"""


def test_a_fenced_block_inside_a_list_item_keeps_its_lines():
    html = render_markdown(RUNBOOK)
    pre = html[html.index("<pre>"):html.index("</pre>")]
    assert html.index("<li>") < html.index("<pre>") < html.index("</li>")
    text = pre.replace('<span class="w"> </span>', " ")
    text = "".join(part.split(">", 1)[-1] for part in text.split("<"))
    assert text.splitlines() == ["apt-get install nginx", "systemctl restart nginx"]


def test_hostile_content_inside_a_fence_in_a_list_stays_text():
    html = render_markdown("- step\n\n    ```html\n    <script>alert(1)</script>\n    <img src=x onerror=alert(2)>\n    ```\n")
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html.replace('<span class="p">', "").replace('<span class="nt">', "").replace("</span>", "")
