import pytest
from django.db import IntegrityError, transaction

from base.constraints import violated
from base.models import IdempotencyRecord

pytestmark = pytest.mark.django_db


def test_a_refused_row_names_the_constraint_it_broke():
    IdempotencyRecord.objects.create(scope="u", key="k", fingerprint="f")
    # when a second row with the same scope and key is written
    with pytest.raises(IntegrityError) as refused, transaction.atomic():
        IdempotencyRecord.objects.create(scope="u", key="k", fingerprint="g")
    # then the error is that constraint's, on this database (PostgreSQL names it, SQLite
    # lists its columns), and no other's
    assert violated(refused.value, IdempotencyRecord, "idempotency_scope_key_unique")
    assert not violated(refused.value, IdempotencyRecord, "another_constraint")
