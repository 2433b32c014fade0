"""The one way the portal renders Markdown; its output is always sanitized with nh3.

Relative links are resolved against the README's folder: a link to another README or folder of the
repository becomes the portal page of that CI (at the same revision), a relative image becomes the
raw-file endpoint. Everything then goes through nh3, so hostile HTML in a README (scripts, event
handlers, ``javascript:`` URLs, iframes) renders harmless whatever the resolver did.
"""

from __future__ import annotations

import posixpath
import xml.etree.ElementTree as ET  # noqa: S405 - we only walk the tree python-markdown built
from collections.abc import Callable
from urllib.parse import quote, unquote, urlsplit

import markdown as md
import nh3
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor
from pygments.token import STANDARD_TYPES

from cmdb.layout import README, safe_repo_path

# (kind, repository path) -> URL. kind is "page" (a CI or folder) , "file" (an artifact) or "raw".
# None: the target has no page where the text is read (the offline export), so the link is dropped.
LinkResolver = Callable[[str, str], str | None]
# (tag, attribute, URL) -> whether the URL may stay; the offline export keeps only its own files.
UrlFilter = Callable[[str, str, str], bool]

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt", "em",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "input", "ins", "kbd", "li", "ol", "p", "pre",
    "s", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "th": {"align", "colspan", "rowspan"},
    "td": {"align", "colspan", "rowspan"},
    "h1": {"id"}, "h2": {"id"}, "h3": {"id"}, "h4": {"id"}, "h5": {"id"}, "h6": {"id"},
    "input": {"type", "checked", "disabled"},
    "ol": {"start"},
}
URL_SCHEMES = {"http", "https", "mailto"}
# Classes a README may carry: only the highlighter's own. Any other class (e.g. Bootstrap's
# position-fixed w-100 h-100) could lay README content over the portal's page and fake it.
ALLOWED_CLASSES = {
    "div": {"highlight"},
    "span": {name for name in STANDARD_TYPES.values() if name},
}
# Every id a README carries starts with this, so it can never be one of the page's own ids; in-page
# links are rewritten to match.
ID_PREFIX = "md-"


def _attribute_filter(element: str, attribute: str, value: str) -> str | None:
    if attribute == "href" and len(value) > 1 and value[0] == "#" and not value.startswith("#" + ID_PREFIX):
        return "#" + ID_PREFIX + value[1:]
    return value


def _filtered(keep_url: UrlFilter):
    def attribute_filter(element: str, attribute: str, value: str) -> str | None:
        # Raw HTML links never meet the resolver: only here are they all seen.
        if attribute in ("href", "src") and not keep_url(element, attribute, value):
            return None
        return _attribute_filter(element, attribute, value)

    return attribute_filter


class _LinkRewriter(Treeprocessor):
    def __init__(self, md_instance: md.Markdown, base_dir: str, resolver: LinkResolver | None):
        super().__init__(md_instance)
        self.base_dir = base_dir
        self.resolver = resolver

    def run(self, root: ET.Element) -> None:
        for el in root.iter():
            for tag, attribute in (("a", "href"), ("img", "src")):
                if el.tag == tag and el.get(attribute):
                    url = self._rewrite(el.get(attribute, ""), image=tag == "img")
                    if url is None:
                        del el.attrib[attribute]  # the text stays, as plain text
                    else:
                        el.set(attribute, url)

    def _rewrite(self, url: str, *, image: bool) -> str | None:
        parts = urlsplit(url)
        if parts.scheme or parts.netloc or url.startswith(("#", "/")) or not parts.path:
            return url  # absolute, anchor or site-relative: left for nh3 to judge
        target = posixpath.normpath(posixpath.join(self.base_dir, unquote(parts.path)))
        if target == ".":
            target = ""
        clean = safe_repo_path(target)
        if clean is None or self.resolver is None:
            return "#"  # points outside the repository
        fragment = f"#{quote(parts.fragment)}" if parts.fragment else ""
        if image:
            return self.resolver("raw", clean)
        if clean == README or clean.endswith("/" + README):
            target_url = self.resolver("page", posixpath.dirname(clean))
        elif url.endswith("/") or "." not in posixpath.basename(clean):
            target_url = self.resolver("page", clean)
        else:
            target_url = self.resolver("file", clean)
        if target_url is None:
            return None
        return target_url if "#" in target_url else target_url + fragment


class _LinkExtension(Extension):
    def __init__(self, base_dir: str, resolver: LinkResolver | None):
        super().__init__()
        self.base_dir = base_dir
        self.resolver = resolver

    def extendMarkdown(self, md_instance: md.Markdown) -> None:  # noqa: N802 - python-markdown API
        md_instance.treeprocessors.register(_LinkRewriter(md_instance, self.base_dir, self.resolver), "cmdb_links", 1)


def sanitize(html: str, *, keep_url: UrlFilter | None = None) -> str:
    """Strip everything that could run script or load foreign frames from ``html``; with ``keep_url``,
    also every ``href`` and ``src`` it refuses (the element stays, without its link)."""
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        allowed_classes=ALLOWED_CLASSES,
        id_prefix=ID_PREFIX,
        attribute_filter=_attribute_filter if keep_url is None else _filtered(keep_url),
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def render_markdown(text: str, *, base_dir: str = "", resolver: LinkResolver | None = None,
                    keep_url: UrlFilter | None = None) -> str:
    """Markdown (tables, fenced code, TOC, highlighting) to sanitized HTML.

    ``base_dir`` is the repository folder the text lives in; ``resolver`` turns repository paths
    into portal URLs. Without a resolver, relative links are neutralised. ``keep_url``: see ``sanitize``.
    """
    renderer = md.Markdown(
        extensions=[
            "tables",
            # superfences, not fenced_code: python-markdown's own fences are only found at the top
            # level, so a fence inside a list item (a rebuild step) ran together into one line.
            "pymdownx.superfences",
            "pymdownx.highlight",
            "sane_lists",
            "toc",
            _LinkExtension(base_dir, resolver),
        ],
        extension_configs={
            "pymdownx.highlight": {"css_class": "highlight", "guess_lang": False, "use_pygments": True},
            "toc": {"permalink": False, "slugify": _slugify},
        },
        output_format="html",
    )
    return sanitize(renderer.convert(text), keep_url=keep_url)


def _slugify(value: str, separator: str) -> str:
    from markdown.extensions.toc import slugify_unicode

    # A prefix keeps heading ids from clobbering the page's own element ids.
    return ID_PREFIX + slugify_unicode(value, separator)
