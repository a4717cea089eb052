"""``buffet_row_estimate(query)``: the planner's estimate of a query's rows, so that a
list's bounded count and its estimate are one statement (``base.pagination``).
PostgreSQL only; other databases count exactly."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION buffet_row_estimate(query text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE plan json;
BEGIN
    EXECUTE 'EXPLAIN (FORMAT JSON) ' || query INTO plan;
    RETURN (plan -> 0 -> 'Plan' ->> 'Plan Rows')::bigint;
END $$;
"""
DROP = "DROP FUNCTION IF EXISTS buffet_row_estimate(text);"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):

    dependencies = [
        ("base", "0004_audit_before_after_request"),
    ]

    operations = [migrations.RunPython(create, drop)]
