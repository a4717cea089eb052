"""Hot hand-written statements, prepared once a database session on PostgreSQL.

A statement that joins half a dozen tables costs PostgreSQL more to plan than to run
(a VM create's read: 0.6 ms of planning for 0.1 ms of execution). Prepared, it is parsed
and planned once a session: ``PREPARE`` the first time a connection runs it, ``EXECUTE``
with the values after that, and from the sixth execution on PostgreSQL keeps the generic
plan when it is no worse than a plan made for the values (a look-up by key always is).

The statement is written as for ``cursor.execute`` (``%(name)s`` or ``%s`` parameters):
this module turns it into ``$1, $2, ...`` for ``PREPARE``, and its name is a digest of its
text, so two texts never share a name and a text built the same way twice finds its
statement prepared. The parameters' types come from where they stand (a column compared,
a column inserted into); a value whose place does not say, the text casts
(``%(base)s::inet``). A prepared statement outlives a rolled-back transaction; on a new
connection it is prepared again. Elsewhere (SQLite) the statement is executed as written.
"""

import hashlib
import re
from collections.abc import Mapping, Sequence

from django.db import connection

__all__ = ["as_written", "execute", "update"]

_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s|%%")


class _Prepared:
    """A statement turned for ``PREPARE``: its name, its text with ``$n``, and the order of
    the parameters (names, or None for positional ones)."""

    def __init__(self, sql: str):
        self.name = "buffet_" + hashlib.blake2b(sql.encode(), digest_size=10).hexdigest()
        self.keys: list[str] = []
        positions: dict[str, int] = {}
        self.positional = 0

        def number(match: re.Match) -> str:
            if match.group(0) == "%%":
                return "%"
            key = match.group(1)
            if key is None:
                self.positional += 1
                return f"${self.positional}"
            if key not in positions:
                self.keys.append(key)
                positions[key] = len(self.keys)
            return f"${positions[key]}"

        self.text = _PLACEHOLDER.sub(number, sql)
        if self.keys and self.positional:
            raise ValueError("A statement takes named or positional parameters, not both.")
        count = len(self.keys) or self.positional
        self.execute = f"EXECUTE {self.name}" + (
            "(" + ", ".join(["%s"] * count) + ")" if count else "")

    def values(self, params: Mapping | Sequence | None) -> list:
        if params is None:
            return []
        if self.keys:
            return [params[key] for key in self.keys]
        if len(params) != self.positional:
            raise ValueError(f"The statement takes {self.positional} parameters, "
                             f"{len(params)} given.")
        return list(params)


_turned: dict[str, _Prepared] = {}
_by_name: dict[str, str] = {}


def execute(cursor, sql: str, params: Mapping | Sequence | None = None) -> None:
    """``cursor.execute(sql, params)``, prepared on PostgreSQL: the connection prepares it
    the first time it runs it."""
    if connection.vendor != "postgresql":
        cursor.execute(sql, params)
        return
    statement = _turned.get(sql)
    if statement is None:
        statement = _turned[sql] = _Prepared(sql)
        _by_name[statement.name] = sql
    prepared = _session_statements()
    if statement.name not in prepared:
        cursor.execute(f"PREPARE {statement.name} AS {statement.text}")
        prepared.add(statement.name)
    cursor.execute(statement.execute, statement.values(params))


_UPDATES: dict[tuple, str] = {}


def update(model, pk, **values) -> int:
    """``model.objects.filter(pk=pk).update(**values)`` for plain values, prepared: the
    rows it changed (0 or 1). For an UPDATE run for every job, whose text the ORM would
    compile anew each time."""
    meta = model._meta
    fields = [meta.get_field(name) for name in values]
    key = (connection.vendor, meta.label, tuple(values))
    sql = _UPDATES.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        sql = _UPDATES[key] = (
            f"UPDATE {quote(meta.db_table)} SET "  # noqa: S608
            + ", ".join(f"{quote(f.column)} = %s" for f in fields)
            + f" WHERE {quote(meta.pk.column)} = %s")
    params = [f.get_db_prep_save(value, connection)
              for f, value in zip(fields, values.values(), strict=True)]
    params.append(meta.pk.get_db_prep_value(pk, connection))
    with connection.cursor() as cursor:
        execute(cursor, sql, params)
        return cursor.rowcount


def _session_statements() -> set[str]:
    """The names prepared on the connection's current database session (a new session,
    after a reconnection, starts with none)."""
    raw = connection.connection
    if getattr(connection, "_prepared_session", None) is not raw:
        connection._prepared_session = raw
        connection._prepared_names = set()
    return connection._prepared_names


def as_written(queries) -> list[str]:
    """The statements of ``queries`` (a ``CaptureQueriesContext``) as the code wrote them:
    an ``EXECUTE`` of a prepared statement is the statement's text, and its ``PREPARE``
    (once a session, whatever the code does) is left out."""
    written = []
    for query in queries.captured_queries:
        sql = query["sql"]
        if sql.startswith("PREPARE buffet_"):
            continue
        if sql.startswith("EXECUTE buffet_"):
            sql = _by_name[sql.removeprefix("EXECUTE ").split("(", 1)[0]]
        written.append(sql)
    return written
