"""The one test of a normalised absolute path, shared by manifests (declared targets) and transports.

Run for every declared file of every audited machine, so it is string searches rather than a split
and a loop over the parts: a part that is "", "." or ".." shows as "//", "/./" or "/../" inside the
path, or as "/", "/." or "/.." at its end.
"""

from __future__ import annotations


def is_normalised_absolute(path: str) -> bool:
    """``path`` starts with "/", is not "/" and has no empty, "." or ".." part (no NUL either)."""
    return (
        path.startswith("/")
        and path != "/"
        and "\0" not in path
        and "//" not in path
        and "/./" not in path
        and "/../" not in path
        and not path.endswith(("/", "/.", "/.."))
    )
