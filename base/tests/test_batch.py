import pytest
from django.db import connection
from django.db.models import Value

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
