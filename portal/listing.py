"""Helpers shared by the list pages of every app."""

from __future__ import annotations

from urllib.parse import urlencode


def with_query(url: str, **params) -> str:
    """``url`` with the non-empty ``params`` as its query string."""
    params = {k: v for k, v in params.items() if v not in (None, "")}
    return f"{url}?{urlencode(params)}" if params else url
