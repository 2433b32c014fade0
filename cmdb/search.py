"""Ranked full-text search over CI names, paths and README text.

The database's own full-text engine does the work: an FTS5 table on SQLite, a ``tsvector`` table
with a GIN index on PostgreSQL (both created by migration 0002). Rows are written by the indexer in
the same transaction as the CIs they describe.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection

_TOKEN = re.compile(r"[\w]+", re.UNICODE)
MAX_TERMS = 8
DOCS_PER_STATEMENT = 5000  # bounds the arrays sent in one statement (README bodies can be long)


@dataclass(frozen=True, slots=True)
class Hit:
    ci_id: int
    rank: float
    snippet: str  # plain text with the matches between \x02 and \x03 markers


def _terms(query: str) -> list[str]:
    return [t.lower() for t in _TOKEN.findall(query)][:MAX_TERMS]


def _path_words(path: str) -> str:
    # "production/web-1/nginx" is searchable as its parts too.
    return path + " " + re.sub(r"[/_.\-]+", " ", path)


def delete_documents(ids: Iterable[int]) -> None:
    """Remove the rows of these CIs."""
    ids = list(ids)
    column = "rowid" if connection.vendor == "sqlite" else "ci_id"
    with connection.cursor() as cur:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join(["%s"] * len(chunk))
            cur.execute(f"DELETE FROM cmdb_search WHERE {column} IN ({marks})", chunk)  # noqa: S608


def document_bodies(ids: Iterable[int]) -> dict[int, str]:
    """The stored body of each of these CIs that has a row (the indexer rewrites only those that differ)."""
    ids = list(ids)
    column = "rowid" if connection.vendor == "sqlite" else "ci_id"
    found: dict[int, str] = {}
    with connection.cursor() as cur:
        for start in range(0, len(ids), 5000):
            chunk = ids[start : start + 5000]
            marks = ",".join(["%s"] * len(chunk))
            cur.execute(f"SELECT {column}, body FROM cmdb_search WHERE {column} IN ({marks})", chunk)  # noqa: S608
            found.update((int(i), b) for i, b in cur.fetchall())
    return found


def add_documents(docs: Iterable[tuple[int, str, str, str]]) -> None:
    """Write (ci_id, name, path, body) rows for CIs that have none (``delete_documents`` first)."""
    docs = list(docs)
    with connection.cursor() as cur:
        if connection.vendor == "sqlite":
            cur.executemany(
                "INSERT INTO cmdb_search(rowid, name, path, body) VALUES (%s, %s, %s, %s)",
                [(i, n, _path_words(p), b) for i, n, p, b in docs],
            )
            return
        # One set-based statement per chunk: the server builds every vector in a single executor run
        # instead of planning and executing an INSERT per CI.
        for start in range(0, len(docs), DOCS_PER_STATEMENT):
            chunk = docs[start : start + DOCS_PER_STATEMENT]
            cur.execute(
                "INSERT INTO cmdb_search(ci_id, body, doc) SELECT i, b,"
                " setweight(to_tsvector('simple', n), 'A') || setweight(to_tsvector('simple', p), 'B')"
                " || setweight(to_tsvector('simple', b), 'D')"
                " FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[]) AS d(i, n, p, b)",
                [[d[0] for d in chunk], [d[1] for d in chunk], [_path_words(d[2]) for d in chunk], [d[3] for d in chunk]],
            )


def delete_orphans() -> None:
    """Remove rows whose CI is gone (a full index leaves the index as if rebuilt from nothing)."""
    column = "rowid" if connection.vendor == "sqlite" else "ci_id"
    with connection.cursor() as cur:
        cur.execute(f"DELETE FROM cmdb_search WHERE {column} NOT IN (SELECT id FROM cmdb_configitem)")  # noqa: S608


def clear() -> None:
    with connection.cursor() as cur:
        cur.execute("DELETE FROM cmdb_search")


def search(query: str, *, limit: int = 50) -> list[Hit]:
    """The best ``limit`` CIs for ``query`` (every term must match, as a prefix), best first."""
    terms = _terms(query)
    if not terms:
        return []
    with connection.cursor() as cur:
        if connection.vendor == "sqlite":
            match = " AND ".join(f'"{t}"*' for t in terms)
            cur.execute(
                "SELECT rowid, bm25(cmdb_search, 10.0, 4.0, 1.0) AS score,"
                " snippet(cmdb_search, 2, char(2), char(3), '…', 16)"
                " FROM cmdb_search WHERE cmdb_search MATCH %s ORDER BY score LIMIT %s",
                [match, limit],
            )
            return [Hit(int(r[0]), -float(r[1]), r[2] or "") for r in cur.fetchall()]
        tsquery = " & ".join(f"{t}:*" for t in terms)
        cur.execute(
            "SELECT ci_id, ts_rank_cd(doc, q) AS score,"
            " ts_headline('simple', body, q, 'StartSel=\x02,StopSel=\x03,MaxWords=20,MinWords=8')"
            " FROM cmdb_search, to_tsquery('simple', %s) q WHERE doc @@ q ORDER BY score DESC LIMIT %s",
            [tsquery, limit],
        )
        return [Hit(int(r[0]), float(r[1]), r[2] or "") for r in cur.fetchall()]
