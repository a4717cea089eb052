import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from base import prepared
from base.models import AuditEvent
from conftest import unique

pytestmark = pytest.mark.django_db

LOOKUP = ("SELECT object_id, detail FROM base_auditevent "
          "WHERE event = %(event)s AND object_type = %(kind)s AND object_id LIKE '1%%' "
          "AND object_type = %(kind)s")


def _rows(sql, params):
    with connection.cursor() as cursor:
        prepared.execute(cursor, sql, params)
        return cursor.fetchall()


def _events(n: int) -> str:
    event = unique("e.")
    for i in range(n):
        AuditEvent.objects.create(event=event, object_type="t", object_id=f"1{i}",
                                  detail={"i": i})
    AuditEvent.objects.create(event=event, object_type="t", object_id="2")
    return event


def test_a_statement_answers_what_it_answers_unprepared_and_is_prepared_once_a_session():
    # given rows, and a statement with a named parameter used twice and a literal %
    event = _events(3)
    params = {"event": event, "kind": "t"}
    with connection.cursor() as cursor:
        cursor.execute(LOOKUP, params)
        expected = sorted(cursor.fetchall())
    # when it is executed prepared, several times
    with CaptureQueriesContext(connection) as queries:
        answers = [sorted(_rows(LOOKUP, params)) for _ in range(7)]
    # then every answer is the unprepared one
    assert answers == [expected] * 7 and len(expected) == 3
    sql = [q["sql"] for q in queries.captured_queries]
    if connection.vendor == "postgresql":
        # and the session prepared it at most once (another test may have before), each
        # run an EXECUTE of it, which reads back as the statement written
        assert sum(s.startswith("PREPARE buffet_") for s in sql) <= 1
        assert sum(s.startswith("EXECUTE buffet_") for s in sql) == 7
        assert prepared.as_written(queries) == [LOOKUP] * 7
    else:
        # elsewhere executed as written
        assert len(sql) == 7 and prepared.as_written(queries) == sql


def test_positional_parameters_and_their_count():
    event = _events(2)
    sql = "SELECT count(*) FROM base_auditevent WHERE event = %s AND object_id <> %s"
    assert _rows(sql, [event, "2"]) == [(2,)]
    if connection.vendor == "postgresql":
        with pytest.raises(ValueError, match="takes 2 parameters, 1 given"):
            _rows(sql, [event])


def test_named_and_positional_parameters_are_not_mixed():
    with pytest.raises(ValueError, match="named or positional"):
        prepared._Prepared("SELECT %s, %(a)s")


@pytest.mark.django_db(transaction=True)
def test_a_statement_prepared_in_a_rolled_back_transaction_or_on_a_closed_connection_runs():
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    event = _events(1)
    # a text no other test runs, so that this session has not prepared it yet
    sql = (f"SELECT object_id FROM base_auditevent WHERE event = %s AND object_id = %s "
           f"AND '{unique('x')}' <> ''")
    # given a statement first prepared in a transaction that then rolled back
    with pytest.raises(RuntimeError, match="rolled back"), transaction.atomic():
        with CaptureQueriesContext(connection) as queries:
            assert _rows(sql, [event, "10"]) == [("10",)]
        assert queries.captured_queries[0]["sql"].startswith("PREPARE buffet_")
        raise RuntimeError("rolled back")
    # then the session still has it: an EXECUTE alone
    with CaptureQueriesContext(connection) as queries:
        assert _rows(sql, [event, "10"]) == [("10",)]
    assert [q["sql"].split(" ", 1)[0] for q in queries.captured_queries] == ["EXECUTE"]
    # and on a new connection (a new session) it is prepared again
    connection.close()
    with CaptureQueriesContext(connection) as queries:
        assert _rows(sql, [event, "2"]) == [("2",)]
    assert [q["sql"].split(" ", 1)[0] for q in queries.captured_queries] == [
        "PREPARE", "EXECUTE"]


def test_an_update_by_key_writes_plain_values_as_the_orm_would():
    # given a row
    event = _events(1)
    row = AuditEvent.objects.get(event=event, object_id="10")
    at = row.at.replace(microsecond=0) - timezone.timedelta(days=1)
    # when two of its fields, a JSON and a time, are updated by its key, twice (the second
    # time prepared on PostgreSQL)
    with CaptureQueriesContext(connection) as queries:
        changed = [prepared.update(AuditEvent, row.pk, detail={"n": n, "why": "x"}, at=at)
                   for n in (1, 2)]
    # then each changed the one row, and it reads back as written
    assert changed == [1, 1]
    row.refresh_from_db()
    assert row.detail == {"n": 2, "why": "x"} and row.at == at
    written = prepared.as_written(queries)
    assert len(written) == 2 and all(w.startswith('UPDATE "base_auditevent" SET ')
                                     for w in written)
    if connection.vendor == "postgresql":
        # one text, run as an EXECUTE of it
        assert written[0] == written[1] and written[0].endswith('WHERE "id" = %s')
        assert all(q["sql"].startswith(("PREPARE buffet_", "EXECUTE buffet_"))
                   for q in queries.captured_queries)
    # and a key of no row changes none
    assert prepared.update(AuditEvent, row.pk + 10_000, object_id="x") == 0
