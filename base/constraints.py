"""Which of a model's constraints the database refused a write for.

A check made before a write cannot see what a concurrent transaction has not committed
yet: two requests can both pass it, and the database's constraint lets one of them in.
The other one's ``IntegrityError`` names the constraint (PostgreSQL) or its columns
(SQLite); a service turns that into the same error its check gives.
"""

from django.db import IntegrityError, models

__all__ = ["violated"]


def violated(exc: IntegrityError, model: type[models.Model], name: str) -> bool:
    """Whether ``exc`` is the database refusing a row of ``model`` for its constraint
    ``name`` (a ``UniqueConstraint`` of its ``Meta``)."""
    cause = exc.__cause__
    diag = getattr(cause, "diag", None)
    if diag is not None:  # PostgreSQL names the constraint
        return diag.constraint_name == name
    constraint = next((c for c in model._meta.constraints if c.name == name), None)
    if not isinstance(constraint, models.UniqueConstraint):
        return False
    # SQLite: "UNIQUE constraint failed: <table>.<column>, <table>.<column>"
    table = model._meta.db_table
    columns = ", ".join(f"{table}.{model._meta.get_field(f).column}"
                        for f in constraint.fields)
    return str(cause or exc) == f"UNIQUE constraint failed: {columns}"
