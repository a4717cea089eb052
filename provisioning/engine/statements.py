"""A job's first delivery and its end in fewer round trips, on PostgreSQL.

A short job is mostly its statements: the ORM compiles each one anew for every job
(about a third of a no-op job's worker CPU), and each one is a round trip and a commit.
The two moments that took two or more are one statement each here, written once per
process from the models' own tables and columns:

- ``claim``: the conditional ``UPDATE`` that takes a queued job waiting for no other,
  and, in the same statement, the job as it is now, its stamp and its steps;
- ``end``: the last step's row written and the job ended with it (and its outputs),
  ``... WHERE state = 'running'`` as ``ConcurrentTransitionMixin`` would.

The rows come back through each field's database converters, as the ORM's do. Other
databases (SQLite) run the runner's ORM statements, one at a time.
"""

from collections.abc import Sequence
from datetime import datetime
from functools import cache

from django.db import connection
from django.db.models import Field, Model

from base import prepared
from fabric.models import Stamp
from provisioning.models import Job, JobState, JobStep

__all__ = ["claim", "end", "supported"]


def supported() -> bool:
    """Whether the database runs a data-modifying ``WITH`` query (PostgreSQL)."""
    return connection.vendor == "postgresql"


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _column(model: type[Model], name: str) -> str:
    return _quote(model._meta.get_field(name).column)


class _Rows:
    """A model's columns in a statement, and its instances built from them."""

    def __init__(self, model: type[Model], alias: str):
        self.model, self.alias = model, alias
        self.fields: Sequence[Field] = model._meta.concrete_fields
        self.columns = [f"{alias}.{_quote(f.column)}" for f in self.fields]
        self._converters = []
        for field in self.fields:
            col = field.get_col(alias)
            self._converters.append((col, [*connection.ops.get_db_converters(col),
                                           *col.get_db_converters(connection)]))

    def build(self, values: Sequence) -> Model:
        converted = []
        for (col, converters), value in zip(self._converters, values, strict=True):
            for convert in converters:
                value = convert(value, col, connection)
            converted.append(value)
        return self.model.from_db(connection.alias, None, converted)


@cache
def _claim_statement() -> tuple[str, _Rows, _Rows, _Rows]:
    job, stamp, step = _Rows(Job, "claimed"), _Rows(Stamp, "stamp"), _Rows(JobStep, "step")
    col = lambda name: _column(Job, name)  # noqa: E731 - read as a column of the job
    sql = (
        f"WITH claimed AS (UPDATE {_quote(Job._meta.db_table)} "  # noqa: S608
        f"SET {col('state')} = %s, {col('attempts')} = {col('attempts')} + 1, "
        f"{col('worker')} = %s, {col('heartbeat_at')} = %s, "
        f"{col('started_at')} = COALESCE({col('started_at')}, %s) "
        f"WHERE {col('id')} = %s AND {col('state')} = %s AND {col('after')} IS NULL "
        f"AND {col('attempts')} <= {col('max_attempts')} RETURNING *) "
        f"SELECT {', '.join(job.columns + stamp.columns + step.columns)} FROM claimed "
        f"JOIN {_quote(Stamp._meta.db_table)} stamp "
        f"ON stamp.{_column(Stamp, 'id')} = claimed.{col('stamp')} "
        f"LEFT JOIN {_quote(JobStep._meta.db_table)} step "
        f"ON step.{_column(JobStep, 'job')} = claimed.{col('id')} "
        f"ORDER BY step.{_column(JobStep, 'index')}")
    return sql, job, stamp, step


def claim(job_id, worker: str, now: datetime) -> tuple[Job, list[JobStep]] | None:
    """Take a queued job waiting for no other, delivered no more than it may be: the job,
    its stamp in hand, and its steps in order; None if it is not such a job."""
    sql, jobs, stamps, steps = _claim_statement()
    with connection.cursor() as cursor:
        prepared.execute(cursor, sql, [JobState.RUNNING, worker, now, now, job_id,
                                       JobState.QUEUED])
        rows = cursor.fetchall()
    if not rows:
        return None
    width_job, width_stamp = len(jobs.fields), len(stamps.fields)
    job = jobs.build(rows[0][:width_job])
    job.stamp = stamps.build(rows[0][width_job:width_job + width_stamp])
    in_order = []
    for row in rows:
        values = row[width_job + width_stamp:]
        if values[0] is None:
            break  # a job without steps: the one row of the LEFT JOIN
        step = steps.build(values)
        step.job = job  # one job in hand, not one a step
        in_order.append(step)
    return job, in_order


@cache
def _end_statement() -> str:
    step = lambda name: _column(JobStep, name)  # noqa: E731 - a column of the step
    job = lambda name: _column(Job, name)  # noqa: E731 - a column of the job
    return (
        f"WITH step AS (UPDATE {_quote(JobStep._meta.db_table)} "  # noqa: S608
        f"SET {step('state')} = %s, {step('finished_at')} = %s, {step('log')} = %s, "
        f"{step('output')} = %s WHERE {step('id')} = %s) "
        f"UPDATE {_quote(Job._meta.db_table)} SET {job('state')} = %s, "
        f"{job('finished_at')} = %s, {job('outputs')} = %s "
        f"WHERE {job('id')} = %s AND {job('state')} = %s")


def end(job: Job, row: JobStep) -> bool:
    """Write the last step's row as it is in hand and end the job as it is in hand (its
    new state, ``finished_at`` and outputs), if it is still running; whether it was."""
    output = JobStep._meta.get_field("output").get_db_prep_save(row.output, connection)
    outputs = Job._meta.get_field("outputs").get_db_prep_save(job.outputs, connection)
    with connection.cursor() as cursor:
        prepared.execute(cursor, _end_statement(), [
            row.state, row.finished_at, row.log, output, row.pk, job.state, job.finished_at,
            outputs, job.pk, JobState.RUNNING])
        return cursor.rowcount == 1
