"""URL converters every app's URLs use; importing this module registers them.

- ``repopath``: a repository path, anything Git accepts in a name (newlines and tabs included:
  Django's ``path`` converter stops at a newline, so such a file could not be linked to).
- ``id``: a row id. At most 18 digits, so it always fits the databases' 64-bit integers: a longer
  number is an unknown page (404), never an overflow inside the database driver (500).
"""

from __future__ import annotations

from django.urls import register_converter

ID_REGEX = "[0-9]{1,18}"


class RepoPathConverter:
    regex = r"[^\x00]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class IdConverter:
    regex = ID_REGEX

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int | str) -> str:
        return str(value)


def is_id(text: str) -> bool:
    """``text`` is a row id a query parameter may carry (the converter's rule, for ``?run=`` and the like)."""
    return text.isascii() and text.isdigit() and len(text) <= 18


register_converter(RepoPathConverter, "repopath")
register_converter(IdConverter, "id")
