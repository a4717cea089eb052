"""Rows of several models read by one hand-written SELECT, as the ORM would read them.

For a hot path whose ORM queries cost more to build than to run: the columns are listed
from the models' fields, and each row is turned into model instances with the converters
the ORM's compiler applies (a UUID on SQLite, a JSON value, an encrypted field), so what
the caller gets is what ``select_related`` would have given. A part joined by a
``LEFT JOIN`` that matched nothing reads as None.
"""

import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connections, models
from django.db.backends.base.base import BaseDatabaseWrapper

__all__ = ["Part", "Selection"]


@dataclass(frozen=True)
class Part:
    """The concrete fields of ``model`` under ``alias``, less those in ``defer`` (read
    later, on access, as the ORM's ``defer``)."""

    model: type[models.Model]
    alias: str
    defer: tuple[str, ...] = ()
    fields: tuple[models.Field, ...] = field(init=False)

    def __post_init__(self):
        fields = tuple(f for f in self.model._meta.concrete_fields if f.name not in self.defer)
        object.__setattr__(self, "fields", fields)


class Selection:
    """``columns()`` for the statement's select list, in the order of ``parts``;
    ``read(row)`` the instances of one row of it (then what the statement selected after
    them, as it came)."""

    def __init__(self, *parts: Part):
        self.parts = parts
        self._converters: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def columns(self, connection: BaseDatabaseWrapper) -> str:
        quote = connection.ops.quote_name
        return ", ".join(f"{quote(part.alias)}.{quote(f.column)}"
                         for part in self.parts for f in part.fields)

    def read(self, row: Sequence[Any], connection: BaseDatabaseWrapper) -> list[Any]:
        connection = connections[connection.alias]  # the thread's own, not the proxy
        converters = self._converters.get(connection)
        if converters is None:
            converters = self._converters[connection] = self._converters_of(connection)
        values = list(row)
        for i, (functions, expression) in converters.items():
            for convert in functions:
                values[i] = convert(values[i], expression, connection)
        read, start = [], 0
        for part in self.parts:
            end = start + len(part.fields)
            own = values[start:end]
            pk = own[part.fields.index(part.model._meta.pk)]
            read.append(None if pk is None else part.model.from_db(
                connection.alias, [f.attname for f in part.fields], own))
            start = end
        return read + values[start:]

    def _converters_of(self, connection) -> dict[int, tuple[list, Any]]:
        """As ``SQLCompiler.get_converters``: the backend's, then the field's."""
        converters, i = {}, 0
        for part in self.parts:
            for f in part.fields:
                column = f.get_col(part.alias)
                functions = (connection.ops.get_db_converters(column)
                             + column.get_db_converters(connection))
                if functions:
                    converters[i] = (functions, column)
                i += 1
        return converters
