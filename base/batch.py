"""New rows of several models written in the round trip of a statement that follows them.

A use case that writes a handful of rows and then one statement that must come last (a
quota reservation) collects the rows in a ``Pending`` and hands it to that statement.
On PostgreSQL they become its data-modifying ``WITH`` queries: one round trip for all.
Elsewhere ``save()`` writes them first, one ``INSERT`` a model. Either way the rows are
what ``Model.save()`` would have written (field defaults, ``auto_now_add``, the
database's value conversions), in the caller's transaction. ``update`` is such a last
statement for a change of one row: its ``UPDATE``, the new rows in its round trip.
"""

from django.db import connection, models
from django_fsm import ConcurrentTransition

from base import prepared

__all__ = ["Pending", "save_state"]


class Pending:
    """Unsaved instances, written together in the order they were added."""

    def __init__(self):
        self._objs: list[models.Model] = []

    def add(self, *objs: models.Model) -> None:
        self._objs.extend(objs)

    def __bool__(self) -> bool:
        return bool(self._objs)

    def ctes(self) -> tuple[list[str], list]:
        """``w_<i> AS (INSERT ...)`` for each run of one model, and their parameters: for
        the ``WITH`` list of the statement that writes them (on PostgreSQL, which runs a
        data-modifying ``WITH`` query whether or not the statement reads it)."""
        quote = connection.ops.quote_name
        parts, params = [], []
        for i, (model, fields, objs) in enumerate(self._runs()):
            columns = ", ".join(quote(f.column) for f in fields)
            row = "(" + ", ".join(["%s"] * len(fields)) + ")"
            parts.append(f"w_{i} AS (INSERT INTO {quote(model._meta.db_table)} "  # noqa: S608
                         f"({columns}) VALUES {', '.join([row] * len(objs))})")
            params += [value for obj in objs for value in _values(fields, obj)]
        return parts, params

    def update(self, obj: models.Model, fields: list[str], *, where: dict) -> int:
        """Write the rows, then ``fields`` of ``obj`` (as ``save(update_fields=...)`` would:
        ``auto_now`` fields are stamped and written too) where its row still has the values
        of ``where`` (column names and values): on PostgreSQL in one statement. The count
        of the rows it updated (0 or 1)."""
        meta = obj._meta
        quote = connection.ops.quote_name
        written = [meta.get_field(name) for name in fields]
        written += [f for f in meta.concrete_fields
                    if getattr(f, "auto_now", False) and f not in written]
        sets = ", ".join(f"{quote(f.column)} = %s" for f in written)
        params = [f.get_db_prep_save(f.pre_save(obj, add=False), connection=connection)
                  for f in written]
        conditions = [f"{quote(meta.pk.column)} = %s"]
        params.append(meta.pk.get_db_prep_value(obj.pk, connection))
        for name, value in where.items():
            field = meta.get_field(name)
            conditions.append(f"{quote(field.column)} = %s")
            params.append(field.get_db_prep_value(value, connection))
        sql = (f"UPDATE {quote(meta.db_table)} SET {sets} "  # noqa: S608
               f"WHERE {' AND '.join(conditions)}")
        if connection.vendor == "postgresql" and self:
            parts, before = self.ctes()
            sql, params = f"WITH {', '.join(parts)} {sql}", before + params
        else:
            self.save()
        with connection.cursor() as cursor:
            prepared.execute(cursor, sql, params)
            self.written()
            return cursor.rowcount

    def save(self) -> None:
        """Write them now, one ``INSERT`` a run of one model."""
        for model, _fields, objs in self._runs():
            model.objects.bulk_create(objs)
        self.written()

    def written(self) -> None:
        """What ``save()`` marks on an instance, once the statement has written it."""
        for obj in self._objs:
            obj._state.adding = False
            obj._state.db = connection.alias
        self._objs = []

    def _runs(self):
        """(model, fields written, instances) for each run of instances of one model."""
        runs: list[tuple[type, list]] = []
        for obj in self._objs:
            if runs and runs[-1][0] is type(obj):
                runs[-1][1].append(obj)
            else:
                runs.append((type(obj), [obj]))
        for model, objs in runs:
            fields = [f for f in model._meta.concrete_fields if not f.generated
                      and not (f.primary_key and f.db_returning and objs[0].pk is None)]
            yield model, fields, objs


def save_state(obj: models.Model, previous: str, writes: Pending, *, field: str = "state"
               ) -> None:
    """The new state of ``obj`` (a model with ``ConcurrentTransitionMixin``) where its row
    still has ``previous``, as the mixin's ``save`` writes it, and ``writes`` in the same
    round trip (``Pending.update``)."""
    if not writes.update(obj, [field], where={field: previous}):
        raise ConcurrentTransition("Cannot save object! The state has been changed since "
                                   "fetched from the database!")


def _values(fields, obj) -> list:
    """What ``INSERT`` writes of ``obj``, as ``save`` prepares it: ``pre_save`` (which
    stamps defaults such as ``auto_now_add`` on the instance), then the database value."""
    row = []
    for f in fields:
        value = f.pre_save(obj, add=True)
        if hasattr(value, "resolve_expression"):
            raise TypeError(f"{f} holds an expression: write {type(obj).__name__} with save().")
        row.append(f.get_db_prep_save(value, connection=connection))
    return row
