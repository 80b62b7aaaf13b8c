"""Writing per-row values for many rows in one statement.

Django's ``bulk_update()`` builds a ``CASE WHEN`` per field in Python and costs about a second
per 500 rows with many fields. On PostgreSQL one ``UPDATE … FROM unnest(arrays)`` writes any
number of rows with one statement; elsewhere (SQLite in development) ``bulk_update`` is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connections, models, router
from django.utils import timezone
from psycopg.types.json import Jsonb


def rows_update(
    model: type[models.Model],
    rows: Sequence[dict[str, Any]],
    fields: Sequence[str],
    *,
    only_if: dict[str, Any] | None = None,
) -> int:
    """Set ``fields`` from each row dict (which also holds ``id``) on the row with that id.

    ``only_if`` is a guard checked in the same statement: ``{field: value}`` (e.g. only rows
    still in ``sending``) or ``{"field__in": values}``. Returns the number of rows written.
    """
    if not rows:
        return 0
    alias = router.db_for_write(model)
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return _rows_update_orm(model, rows, fields, only_if=only_if)

    meta = model._meta
    pk = meta.pk
    targets = [meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    columns = [pk, *targets]
    arrays = [[row[field.attname] for row in rows] for field in columns]
    unnest_args = ", ".join(f"%s::{_array_type(field, connection)}" for field in columns)
    aliases = ", ".join(f"c{index}" for index in range(len(columns)))
    assignments = [f"{quote(field.column)} = v.c{index + 1}" for index, field in enumerate(targets)]
    if any(f.name == "updated_at" for f in meta.concrete_fields) and "updated_at" not in fields:
        assignments.append(f"{quote(meta.get_field('updated_at').column)} = now()")
    where = [f"t.{quote(pk.column)} = v.c0"]
    params: list[Any] = list(arrays)
    for name, value in (only_if or {}).items():
        if name.endswith("__in"):
            where.append(f"t.{quote(meta.get_field(name.removesuffix('__in')).column)} = ANY(%s)")
            params.append(list(value))
        else:
            where.append(f"t.{quote(meta.get_field(name).column)} = %s")
            params.append(value)
    # Identifiers come from model metadata; every value is a parameter.
    sql = (
        f"UPDATE {quote(meta.db_table)} AS t SET {', '.join(assignments)} "  # noqa: S608
        f"FROM unnest({unnest_args}) AS v({aliases}) WHERE {' AND '.join(where)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _array_type(field: models.Field, connection) -> str:
    db_type = field.rel_db_type(connection) if field.is_relation else field.db_type(connection)
    return f"{db_type}[]"  # varchar(n)[] keeps the length check


def _rows_update_orm(model, rows, fields, *, only_if) -> int:
    objects = []
    meta = model._meta
    for row in rows:
        instance = model(pk=row[meta.pk.attname])
        for name in fields:
            setattr(instance, meta.get_field(name).attname, row[meta.get_field(name).attname])
        objects.append(instance)
    if only_if:
        allowed = set(
            model._default_manager.filter(pk__in=[o.pk for o in objects], **only_if).values_list(
                "pk", flat=True
            )
        )
        objects = [o for o in objects if o.pk in allowed]
    extra = ["updated_at"] if any(f.name == "updated_at" for f in meta.concrete_fields) else []
    if extra:
        now = timezone.now()
        for instance in objects:
            instance.updated_at = now
    return model._default_manager.bulk_update(objects, [*fields, *extra], batch_size=500)


def rows_insert(
    model: type[models.Model], objects: list[models.Model], *, ids: bool = True
) -> list[models.Model]:
    """Insert ``objects`` and set their primary keys, like ``bulk_create``.

    On PostgreSQL the ids are taken from the table's sequence in one query and the rows go
    in through ``COPY`` (several times faster than a multi-row INSERT built by the ORM);
    elsewhere ``bulk_create`` is used. Field defaults are already on the instances;
    ``auto_now``/``auto_now_add`` fields get the current time. Constraints hold as for an
    INSERT (a violation raises IntegrityError and writes nothing). With ``ids=False`` the
    ids are left to the column's default and not read back: one statement, the COPY.
    """
    if not objects:
        return objects
    alias = router.db_for_write(model)
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return model._default_manager.using(alias).bulk_create(objects, batch_size=2000)
    meta = model._meta
    quote = connection.ops.quote_name
    fields = [f for f in meta.concrete_fields if ids or f is not meta.pk]
    now = timezone.now()
    # COPY goes past Django's cursor wrapper: wrap_database_errors turns psycopg's errors
    # into Django's (a unique violation is an IntegrityError, as from bulk_create).
    with connection.cursor() as cursor, connection.wrap_database_errors:
        if ids:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [meta.db_table, meta.pk.column, len(objects)],
            )
            for obj, (pk,) in zip(objects, cursor.fetchall(), strict=True):
                obj.pk = pk
        columns = ", ".join(quote(f.column) for f in fields)
        json_fields = {f.attname for f in fields if isinstance(f, models.JSONField)}
        now_fields = {
            f.attname
            for f in fields
            if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
        }
        attnames = [f.attname for f in fields]
        with cursor.copy(f"COPY {quote(meta.db_table)} ({columns}) FROM STDIN") as copy:
            for obj in objects:
                row = []
                for name in attnames:
                    if name in now_fields:
                        setattr(obj, name, now)
                    value = getattr(obj, name)
                    row.append(Jsonb(value) if name in json_fields and value is not None else value)
                copy.write_row(row)
    for obj in objects:
        obj._state.adding = False
        obj._state.db = alias
    return objects
