"""Helpers shared by the list pages of every app."""

from __future__ import annotations

from urllib.parse import urlencode


def with_query(url: str, **params) -> str:
    """``url`` with the non-empty ``params`` as its query string."""
    params = {k: v for k, v in params.items() if v not in (None, "")}
    return f"{url}?{urlencode(params)}" if params else url


def form_error(form) -> str:
    """The first error of a form, as one sentence for the alert above the page."""
    for name, errors in form.errors.items():
        label = form.fields[name].label if name in form.fields else ""
        text = errors[0]
        return f"{label or name.replace('_', ' ').capitalize()}: {text}" if name != "__all__" else text
    return "The form is not valid."
