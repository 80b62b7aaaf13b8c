"""Writing per-row values for many rows in one statement.

Django's ``bulk_update()`` builds a ``CASE WHEN`` per field in Python and costs about a second
per 500 rows with many fields. On PostgreSQL one ``UPDATE … FROM unnest(arrays)`` writes any
number of rows with one statement; elsewhere (SQLite in development) ``bulk_update`` is used.
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import itertools
import json
import operator
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from django.db import connections, models, router
from django.db.backends.postgresql.base import ServerBindingCursor
from django.utils import timezone
from psycopg.adapt import PyFormat, Transformer
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
    names = [field.attname for field in columns]
    # One JSON document of all the rows, read back by PostgreSQL as a set of typed records:
    # psycopg dumps no array element by element in Python.
    keys = [f"c{index}" for index in range(len(names))]
    document = json_bytes(
        [{key: row[name] for key, name in zip(keys, names, strict=True)} for row in rows],
        default=_json_value,
    ).decode()
    record = ", ".join(
        f"c{index} {_column_type(field, connection)}" for index, field in enumerate(columns)
    )
    assignments = [f"{quote(field.column)} = v.c{index + 1}" for index, field in enumerate(targets)]
    if any(f.name == "updated_at" for f in meta.concrete_fields) and "updated_at" not in fields:
        assignments.append(f"{quote(meta.get_field('updated_at').column)} = now()")
    where = [f"t.{quote(pk.column)} = v.c0"]
    params: list[Any] = [document]
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
        f"FROM (SELECT * FROM json_to_recordset(%s::json) AS r({record})) "
        f"AS v WHERE {' AND '.join(where)}"
    )
    # Bound on the server: the document goes as a parameter, not quoted into the statement.
    with bound_cursor(connection) as cursor, connection.wrap_database_errors:
        cursor.execute(sql, params)
        return cursor.rowcount


def json_bytes(value: Any, *, default: Any = None) -> bytes:
    """``value`` as JSON text in UTF-8: by orjson, which writes a message's row or result
    several times faster than ``json.dumps`` (times in ISO 8601 with their offset, UUIDs as
    strings, as ``_json_value`` does). What orjson refuses (an integer past 64 bits, a key
    that is not a str, a type ``default`` must turn into data) goes to ``json.dumps``, which
    writes it as before or raises the same TypeError."""
    try:
        return orjson.dumps(value, default=default)
    except TypeError:  # orjson.JSONEncodeError is one
        return json.dumps(value, default=default).encode()


def _json_value(value: Any) -> Any:
    """A value JSON has no type for, as PostgreSQL reads it from text (times in ISO 8601 with
    their offset, UUIDs and decimals as strings)."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} cannot be written by rows_update")


def _column_type(field: models.Field, connection) -> str:
    return field.rel_db_type(connection) if field.is_relation else field.db_type(connection)


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


def bound_cursor(connection):
    """A cursor for the send path's own SQL (every value a parameter) that sends the values
    apart from the statement (server-side binding): psycopg need not quote each value into
    the SQL in Python (most of a one-row INSERT's cost), and a statement run again and again
    is prepared once. It is logged and wrapped like Django's own cursors. PostgreSQL only."""
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        return connection._prepare_cursor(ServerBindingCursor(connection.connection))


#: Up to this many rows go in with one ``INSERT … RETURNING`` (one statement, no sequence
#: read); more with ``COPY``, which is faster per row but costs a statement more.
INSERT_ROWS_MAX = 50


def rows_insert(
    model: type[models.Model], objects: list[models.Model], *, ids: bool = True
) -> list[models.Model]:
    """Insert ``objects`` and set their primary keys, like ``bulk_create``.

    On PostgreSQL a few rows go in with one ``INSERT … RETURNING id`` statement; more have
    their ids taken from the table's sequence in one query and go in through ``COPY``
    (several times faster than a multi-row INSERT built by the ORM). Elsewhere
    ``bulk_create`` is used. Field defaults are already on the instances;
    ``auto_now``/``auto_now_add`` fields get the current time. Constraints hold as for an
    INSERT (a violation raises IntegrityError and writes nothing). With ``ids=False`` the
    ids are left to the column's default and not read back: always one statement.
    """
    if not objects:
        return objects
    alias = router.db_for_write(model)
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return model._default_manager.using(alias).bulk_create(objects, batch_size=2000)
    layout = _insert_layout(model, connection.alias)
    now = timezone.now()
    # COPY goes past Django's cursor wrapper: wrap_database_errors turns psycopg's errors
    # into Django's (a unique violation is an IntegrityError, as from bulk_create).
    with bound_cursor(connection) as cursor, connection.wrap_database_errors:
        if len(objects) <= INSERT_ROWS_MAX:
            rows = _rows_values(layout, objects, now)
            values = ", ".join([layout.placeholders] * len(rows))
            skip = layout.pk_index
            returning = f" RETURNING {layout.pk}" if ids else ""
            cursor.execute(
                f"{layout.insert} VALUES {values}{returning}",
                [value for row in rows for i, value in enumerate(row) if i != skip],
            )
            if not ids:
                return objects
            ids = cursor.fetchall()
        elif not ids:
            with cursor.copy(layout.copy_without_pk) as copy:
                copy.write(copy_text(layout, objects, now, pks=None))
            return objects
        else:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [layout.table, layout.pk_column, len(objects)],
            )
            ids = cursor.fetchall()
            with cursor.copy(layout.copy) as copy:
                copy.write(copy_text(layout, objects, now, pks=[pk for (pk,) in ids]))
    for obj, (pk,) in zip(objects, ids, strict=True):
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = alias
    return objects


def _rows_values(
    layout: _InsertLayout, objects: Sequence[models.Model], now: dt.datetime
) -> list[list[Any]]:
    """Each object's column values in ``layout``'s order, its ``auto_now`` fields set to now;
    JSON values serialised once per object shared by several rows (a fan-out's context)."""
    rows = []
    dumped: dict[int, Jsonb] = {}  # by the value's identity
    names = [name for name, _, _ in layout.columns]
    stamped = [name for name, _, is_now in layout.columns if is_now]
    json_at = [index for index, (_, is_json, _) in enumerate(layout.columns) if is_json]
    for obj in objects:
        # Field values straight from the instance's dict (a loaded or built model keeps
        # every concrete field there); a deferred one through its descriptor.
        data = obj.__dict__
        for name in stamped:
            data[name] = now
        row = [data[name] if name in data else getattr(obj, name) for name in names]
        for index in json_at:
            value = row[index]
            if value is not None:
                wrapped = dumped.get(id(value))
                if wrapped is None:
                    wrapped = dumped[id(value)] = _jsonb(value)
                row[index] = wrapped
        rows.append(row)
    return rows


#: COPY's text format: a backslash, and the control characters that would end a field or
#: a row, written as escapes (psycopg's ``write_row`` escapes the same ones).
_COPY_ESCAPES = str.maketrans(
    {"\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
)
_NULL = "\\N"
#: Between a column's values while they are escaped at once (PostgreSQL stores no NUL).
_SEPARATOR = "\x00"


def copy_text(
    layout: _InsertLayout, objects: Sequence[models.Model], now: dt.datetime, *, pks
) -> str:
    """The rows of ``objects`` as the text COPY reads, the primary key from ``pks`` (None:
    left out, to its default) and ``auto_now`` fields set to ``now`` (on the objects too).

    Built a column at a time: a column with one value in every row (the campaign, event and
    channel, the status, the times, a fan-out's shared context; most of a message's 45) is
    written once, and the others are converted with one call each over the column, escaped
    together, then zipped into rows. psycopg's ``write_row`` looks up and runs a dumper per
    value: this is about a fifth of its cost per message."""
    dicts = [obj.__dict__ for obj in objects]
    count = len(dicts)
    columns: list[Any] = []
    for index, (name, is_json, is_now) in enumerate(layout.columns):
        if index == layout.pk_index:
            if pks is not None:
                columns.append(list(map(str, pks)))
            continue
        if is_now:
            for data in dicts:
                data[name] = now
            columns.append(_copy_value(now, is_json=False))
            continue
        try:
            values = list(map(operator.itemgetter(name), dicts))
        except KeyError:  # a deferred field, loaded through its descriptor
            values = [getattr(obj, name) for obj in objects]
        first = values[0]
        if _uniform(values, first, is_json=is_json):  # the same in every row
            columns.append(_copy_value(first, is_json=is_json))
        else:
            columns.append(_copy_column(values, is_json=is_json))
    rows = zip(
        *(c if isinstance(c, list) else itertools.repeat(c, count) for c in columns), strict=True
    )
    return "\n".join(map("\t".join, rows)) + "\n"


#: Types whose equal values are written alike: a column of equal ones is written once. (Not
#: so a decimal's scale, a float's sign of zero, JSON's ``true`` beside ``1``: those columns
#: are written once only when every row holds the very same object.)
_PLAIN_TYPES = frozenset({str, int, uuid.UUID, dt.datetime, dt.date, type(None)})


def _uniform(values: list[Any], first: Any, *, is_json: bool) -> bool:
    if is_json or type(first) not in _PLAIN_TYPES:
        return all(value is first for value in values)
    return values.count(first) == len(values)


def _copy_value(value: Any, *, is_json: bool) -> str:
    """One value as COPY text, escaped."""
    if value is None:
        return _NULL
    return _copy_column([value], is_json=is_json)[0]


def _copy_column(values: list[Any], *, is_json: bool) -> list[str]:
    """A column's values as COPY text, escaped: converted by their type (the first value's
    that is not None; one call per value), then escaped all at once."""
    kind = next((type(v) for v in values if v is not None), None)
    if kind is None:
        return [_NULL] * len(values)
    if is_json:
        convert = _json_text
    elif kind is str:
        convert = None
    elif kind is bool:
        convert = _bool_text
    elif kind is int or kind is uuid.UUID or kind is decimal.Decimal:
        convert = str
    elif issubclass(kind, str):  # a choice (``MessageStatus.QUEUED``): its value
        convert = str.__str__
    elif issubclass(kind, int):
        convert = int.__repr__
    elif kind is dt.datetime or kind is dt.date or kind is dt.time:
        convert = kind.isoformat
    else:  # any other field type: what psycopg would write for it
        return [_NULL if v is None else _psycopg_text(v) for v in values]
    if any(type(v) is not kind for v in values if v is not None):  # mixed: one by one
        return [_copy_value(v, is_json=is_json) for v in values]
    nulls = None in values
    texts = values if convert is None else [v if v is None else convert(v) for v in values]
    if nulls:
        texts = ["" if v is None else v for v in texts]
    if any(_SEPARATOR in text for text in texts):
        escaped = [text.translate(_COPY_ESCAPES) for text in texts]
    else:
        escaped = _SEPARATOR.join(texts).translate(_COPY_ESCAPES).split(_SEPARATOR)
    if nulls:
        escaped = [_NULL if v is None else text for v, text in zip(values, escaped, strict=True)]
    return escaped


def _json_text(value: Any) -> str:
    return json_bytes(value).decode()


def _bool_text(value: bool) -> str:
    return "t" if value else "f"


def _psycopg_text(value: Any) -> str:
    """A value of another type, as psycopg dumps it to text (escaped for COPY)."""
    dumped = Transformer().get_dumper(value, PyFormat.TEXT).dump(value)
    return bytes(dumped).decode().translate(_COPY_ESCAPES)


def _jsonb(value: Any) -> Jsonb:
    """``value`` as JSON for psycopg, serialised now, once, however many rows carry the same
    object. The values are plain data (``context_validate()`` and ``recipients_normalize()``
    refused the rest), which orjson writes as ``json.dumps`` would, in a tenth of the time."""
    text = json_bytes(value)
    return Jsonb(value, dumps=lambda _value: text)


@dataclass(frozen=True, slots=True)
class _InsertLayout:
    table: str
    pk: str
    pk_column: str
    pk_index: int
    #: (attname, is JSON, set to now) per column written, the primary key first
    columns: tuple[tuple[str, bool, bool], ...]
    placeholders: str
    insert: str
    copy: str
    copy_without_pk: str


@functools.cache
def _insert_layout(model: type[models.Model], alias: str) -> _InsertLayout:
    connection = connections[alias]
    meta = model._meta
    quote = connection.ops.quote_name
    # The primary key is written by COPY (ids from the sequence) and left to its default by
    # INSERT (DEFAULT in the VALUES list).
    fields = list(meta.concrete_fields)
    columns = tuple(
        (
            f.attname,
            isinstance(f, models.JSONField),
            bool(getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)),
        )
        for f in fields
    )
    names = ", ".join(quote(f.column) for f in fields)
    placeholders = "(" + ", ".join("DEFAULT" if f is meta.pk else "%s" for f in fields) + ")"
    return _InsertLayout(
        table=meta.db_table,
        pk=quote(meta.pk.column),
        pk_column=meta.pk.column,
        pk_index=fields.index(meta.pk),
        columns=columns,
        placeholders=placeholders,
        insert=f"INSERT INTO {quote(meta.db_table)} ({names})",
        copy=f"COPY {quote(meta.db_table)} ({names}) FROM STDIN",
        copy_without_pk=(
            f"COPY {quote(meta.db_table)} "
            f"({', '.join(quote(f.column) for f in fields if f is not meta.pk)}) FROM STDIN"
        ),
    )


def row_upsert(
    model: type[models.Model],
    obj: models.Model,
    *,
    conflict: str,
    update: str,
    update_where: str,
    params: Sequence[Any] = (),
    returning: str,
) -> tuple | None:
    """``INSERT obj … ON CONFLICT {conflict} DO UPDATE SET {update} WHERE {update_where}
    RETURNING {returning}`` on PostgreSQL: the new row, or the row it conflicts with when
    ``update_where`` holds for it (now locked by this transaction); None when a conflicting
    row exists that ``update_where`` refuses. ``conflict``, ``update`` and ``update_where``
    are SQL built from model metadata by the caller (the existing row is ``t``, the new one
    ``EXCLUDED``); ``params`` fill their placeholders."""
    connection = connections[router.db_for_write(model)]
    layout = _insert_layout(model, connection.alias)
    (values,) = _rows_values(layout, [obj], timezone.now())
    row = [value for index, value in enumerate(values) if index != layout.pk_index]
    table = connection.ops.quote_name(model._meta.db_table)
    # Identifiers come from model metadata and the caller's SQL from it; values are parameters.
    sql = (
        f"{layout.insert.replace(f'INSERT INTO {table}', f'INSERT INTO {table} AS t', 1)} "  # noqa: S608
        f"VALUES {layout.placeholders} ON CONFLICT {conflict} "
        f"DO UPDATE SET {update} WHERE {update_where} RETURNING {returning}"
    )
    with bound_cursor(connection) as cursor, connection.wrap_database_errors:
        cursor.execute(sql, [*row, *params])
        return cursor.fetchone()
