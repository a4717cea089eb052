import pytest
from django.db import connection

from base.models import AuditEvent, IdempotencyRecord
from base.selection import Part, Selection

pytestmark = pytest.mark.django_db


def _read(selection, sql, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return selection.read(cursor.fetchone(), connection)


def test_a_row_reads_as_the_orm_reads_it_and_a_join_that_matched_nothing_as_none():
    event = AuditEvent.objects.create(event="x.y", object_type="t", object_id="1",
                                      detail={"n": 1, "s": ["a"]}, address="10.0.0.1")
    selection = Selection(Part(AuditEvent, "a"), Part(IdempotencyRecord, "r"))
    table = AuditEvent._meta.db_table
    # when the event is read beside a record that is not there, with one value more
    read = _read(selection,
                 f"SELECT {selection.columns(connection)}, 7 FROM {table} a "  # noqa: S608
                 f"LEFT JOIN {IdempotencyRecord._meta.db_table} r ON r.key = 'none' "
                 "WHERE a.id = %s", [event.pk])
    # then each field has the value and type the ORM gives (a UUID, an aware datetime
    # and a JSON value on SQLite too), the record is None and the extra value follows
    got, record, extra = read
    expected = AuditEvent.objects.get(pk=event.pk)
    assert [getattr(got, f.attname) for f in AuditEvent._meta.concrete_fields] == [
        getattr(expected, f.attname) for f in AuditEvent._meta.concrete_fields]
    assert got.uid == event.uid and got.detail == {"n": 1, "s": ["a"]}
    assert got.at.tzinfo is not None
    assert not got._state.adding and got._state.db == "default"
    assert record is None and extra == 7


def test_a_deferred_field_is_read_when_it_is_first_used():
    event = AuditEvent.objects.create(event="x.y", object_type="t", object_id="1",
                                      detail={"secret": "kept"})
    selection = Selection(Part(AuditEvent, "a", defer=("detail",)))
    # when the event is read without its detail
    [got] = _read(selection, f"SELECT {selection.columns(connection)} "  # noqa: S608
                             f"FROM {AuditEvent._meta.db_table} a WHERE a.id = %s", [event.pk])
    # then the detail is not loaded, and comes from the database when asked for
    assert got.get_deferred_fields() == {"detail"}
    assert got.detail == {"secret": "kept"}
