import pytest
from django.db import connection
from django.db.models import Value

from base import prepared
from base.batch import Pending
from base.models import AuditEvent, IdempotencyRecord

pytestmark = pytest.mark.django_db


def _write(pending: Pending) -> None:
    """As a statement that ends with its own query writes them: in its ``WITH`` list on
    PostgreSQL, before it elsewhere."""
    if connection.vendor != "postgresql":
        pending.save()
        return
    parts, params = pending.ctes()
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {', '.join(parts)} SELECT 1", params)
    pending.written()


FIELDS = ["event", "object_type", "object_id", "detail", "before", "after", "address", "face"]


def test_rows_written_together_are_the_rows_save_writes():
    saved = AuditEvent.objects.create(event="a.b", object_type="t", object_id="1",
                                      detail={"n": [1, 2]}, address="10.0.0.9")
    # when rows of two models, one of them twice, are written in one statement
    first = AuditEvent(event="a.b", object_type="t", object_id="1", detail={"n": [1, 2]},
                       address="10.0.0.9")
    second = AuditEvent(event="c.d", object_type="t", object_id="2")
    record = IdempotencyRecord(scope="u", key="k", fingerprint="f")
    pending = Pending()
    pending.add(first, second, record)
    _write(pending)
    # then each is in the database as save() would have written it: its defaults (the
    # uid, the time stamped on the instance too), its JSON and its address
    rows = {e.uid: e for e in AuditEvent.objects.exclude(pk=saved.pk)}
    assert set(rows) == {first.uid, second.uid}
    got = rows[first.uid]
    assert [getattr(got, f) for f in FIELDS] == [getattr(saved, f) for f in FIELDS]
    assert got.at == first.at is not None
    assert rows[second.uid].detail == {} and rows[second.uid].address is None
    stored = IdempotencyRecord.objects.get(key="k")
    assert stored.created_at == record.created_at and stored.status_code is None
    # and the instances know they are saved
    assert not any(obj._state.adding for obj in (first, second, record))
    assert not pending


def test_an_expression_is_refused_before_anything_is_written(postgres):
    pending = Pending()
    pending.add(AuditEvent(event=Value("x"), object_type="t", object_id="1"))
    # when a row holding an expression is to be written in the statement
    # then it is refused, by name, and nothing is written
    with pytest.raises(TypeError, match="holds an expression"):
        pending.ctes()
    assert not AuditEvent.objects.exists()


def test_an_update_carries_the_rows_and_counts_only_a_row_that_still_matches():
    from django.test.utils import CaptureQueriesContext

    record = IdempotencyRecord.objects.create(scope="u", key="k", fingerprint="f")
    # when a change of the record is written with two new rows, where it still has its
    # fingerprint
    pending = Pending()
    first = AuditEvent(event="a.b", object_type="t", object_id="1")
    second = AuditEvent(event="c.d", object_type="t", object_id="2")
    pending.add(first, second)
    record.status_code = 202
    with CaptureQueriesContext(connection) as queries:
        updated = pending.update(record, ["status_code"], where={"fingerprint": "f"})
    # then the row is updated and the new rows written: on PostgreSQL in one statement
    assert updated == 1
    assert IdempotencyRecord.objects.get(pk=record.pk).status_code == 202
    assert set(AuditEvent.objects.values_list("uid", flat=True)) == {first.uid, second.uid}
    assert len(prepared.as_written(queries)) == (1 if connection.vendor == "postgresql" else 2)
    assert not first._state.adding and not pending
    # when the row no longer has the values the change was made from
    record.status_code = 500
    pending.add(AuditEvent(event="e.f", object_type="t", object_id="3"))
    updated = pending.update(record, ["status_code"], where={"fingerprint": "other"})
    # then it is left as it was, and the count says so (the caller's transaction rolls
    # the new row back)
    assert updated == 0
    assert IdempotencyRecord.objects.get(pk=record.pk).status_code == 202
