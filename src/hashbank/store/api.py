"""The Store: banks, entries and the change log behind one small API, on SQLite or PostgreSQL.

Every write goes through one serialised transaction that also appends to the change log,
so the feed is complete and strictly ordered. Bulk adds insert with ON CONFLICT DO NOTHING
(executemany on SQLite, COPY through a temporary table on PostgreSQL; see bulk.py), committed
in batches: a killed import keeps whole batches.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from sqlalchemy import Connection, Engine, Integer, and_, bindparam, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError

from hashbank import signals
from hashbank.settings import database_url
from hashbank.store.bulk import db_value, insert_ignoring_conflicts
from hashbank.store.categories import allowed
from hashbank.store.engine import Readers, driver_cursor, make_engine, migrate, placeholders, write_transaction
from hashbank.store.model import AddResult, AlreadyExists, Bank, Change, Entry, NewEntry, NotFound
from hashbank.store.schema import banks, changes, entries

#: Rows per committed transaction in add_entries: big enough to be fast, small enough to lose little.
BATCH = 20_000
_UNSET: Any = object()
#: Columns of an added row that come from the entry, then those the whole batch shares
#: (disabled_until and updated_at start NULL).
_ROW = ("signal", "value", "category", "source", "external_id", "content_id", "tags", "note", "enabled")
_BATCH = ("bank_id", "added_by", "added_at")
_SNAPSHOT = (
    "signal",
    "value",
    "category",
    "source",
    "external_id",
    "content_id",
    "tags",
    "note",
    "added_at",
    "added_by",
    "disabled_until",
)


def open_store(url: str | None = None) -> Store:
    """The store at ``url`` (default: settings.database_url()), its schema migrated to the newest."""
    engine = make_engine(url or database_url())
    migrate(engine)
    return Store(engine)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _check_thresholds(thresholds: Mapping[str, int] | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, value in (thresholds or {}).items():
        signals.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"threshold for {name} must be a whole number >= 0, got {value!r}")
        out[name] = value
    return out


class Store:
    """Banks of fingerprints with grading, provenance and a change feed."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._readers = Readers(engine)

    def close(self) -> None:
        self._readers.close()
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ---- banks -------------------------------------------------------------------------------

    def create_bank(
        self,
        name: str,
        *,
        description: str = "",
        taxonomy: str = "vics",
        thresholds: dict[str, int] | None = None,
        categories: dict[str, str] | None = None,
    ) -> Bank:
        """A new, enabled bank; AlreadyExists if the name is taken."""
        name = _check_name(name)
        allowed(taxonomy, {})
        row = {
            "name": name,
            "description": description,
            "taxonomy": taxonomy,
            "enabled": True,
            "thresholds": _check_thresholds(thresholds),
            "categories": dict(categories or {}),
            "created_at": _now(),
        }
        try:
            with write_transaction(self.engine) as conn:
                conn.execute(insert(banks), row)
        except IntegrityError:
            raise AlreadyExists(f"bank {name!r} already exists") from None
        return self.get_bank(name)

    def get_bank(self, name: str) -> Bank:
        with self.engine.connect() as conn:
            return self._bank(conn, name)

    def list_banks(self) -> list[Bank]:
        with self.engine.connect() as conn:
            return [_bank(row) for row in conn.execute(select(banks).order_by(banks.c.name))]

    def update_bank(
        self,
        name: str,
        *,
        description: str | None = None,
        thresholds: dict[str, int] | None = None,
        categories: dict[str, str] | None = None,
    ) -> Bank:
        """Change a bank's description, threshold overrides or custom categories (None: keep)."""
        values: dict[str, Any] = {}
        if description is not None:
            values["description"] = description
        if thresholds is not None:
            values["thresholds"] = _check_thresholds(thresholds)
        if categories is not None:
            values["categories"] = dict(categories)
        with write_transaction(self.engine) as conn:
            bank = self._bank(conn, name)
            if values:
                conn.execute(update(banks).where(banks.c.id == bank.id).values(**values))
        return self.get_bank(name)

    def rename_bank(self, name: str, new_name: str) -> Bank:
        """Rename; every entry gets an update in the feed, which carries bank names."""
        new_name = _check_name(new_name)
        try:
            with write_transaction(self.engine) as conn:
                bank = self._bank(conn, name)
                conn.execute(update(banks).where(banks.c.id == bank.id).values(name=new_name))
                self._log_bank(conn, bank.id, "update")
        except IntegrityError:
            raise AlreadyExists(f"bank {new_name!r} already exists") from None
        return self.get_bank(new_name)

    def set_bank_enabled(self, name: str, enabled: bool) -> Bank:
        """Enable or disable a whole bank; its entries appear in the feed with the new state."""
        with write_transaction(self.engine) as conn:
            bank = self._bank(conn, name)
            if bank.enabled != enabled:
                conn.execute(update(banks).where(banks.c.id == bank.id).values(enabled=enabled))
                self._log_bank(conn, bank.id, "update")
        return self.get_bank(name)

    def delete_bank(self, name: str) -> int:
        """Delete a bank and its entries, leaving a tombstone per entry; returns how many entries went."""
        with write_transaction(self.engine) as conn:
            bank = self._bank(conn, name)
            count = self._log_bank(conn, bank.id, "delete")
            conn.execute(entries.delete().where(entries.c.bank_id == bank.id))
            conn.execute(banks.delete().where(banks.c.id == bank.id))
        return count

    # ---- entries -----------------------------------------------------------------------------

    def add_entries(
        self, bank: str, new: Iterable[NewEntry], *, added_by: str = "cli", batch_size: int = BATCH
    ) -> AddResult:
        """Add entries, committing every ``batch_size``. Idempotent on (bank, signal, value): what is
        already there is counted in ``existing`` and left as it is. Invalid entries are skipped and
        reported in ``errors`` as (position, reason); they never stop the rest."""
        target = self.get_bank(bank)
        result = AddResult()
        rows = self._rows(target, new, result)
        while chunk := list(islice(rows, batch_size)):
            added = self._add_batch(target.id, added_by, chunk)
            result.added += added
            result.existing += len(chunk) - added
        return result

    def _rows(self, bank: Bank, new: Iterable[NewEntry], result: AddResult) -> Iterator[tuple]:
        """Validated, normalised rows in _ROW order; refused entries go to result.errors."""
        check_category = bank.check_category
        get_signal = signals.get
        dumps = json.dumps
        for position, entry in enumerate(new):
            try:
                signal = get_signal(entry.signal)
                value = signal.parse(entry.value)
                category = check_category(entry.category)
            except ValueError as exc:
                result.errors.append((position, str(exc)))
                continue
            tags = entry.tags
            yield (signal.name, value, category, entry.source, entry.external_id, entry.content_id,
                   dumps(list(tags)) if tags else None, entry.note, entry.enabled)  # fmt: skip

    def _add_batch(self, bank_id: int, added_by: str, rows: list[tuple]) -> int:
        with write_transaction(self.engine) as conn:
            if conn.execute(select(banks.c.id).where(banks.c.id == bank_id)).first() is None:
                raise NotFound(f"bank id {bank_id} was deleted during the import")
            batch = (bank_id, added_by, db_value(conn, entries, "added_at", _now()))
            before = conn.execute(select(func.coalesce(func.max(entries.c.id), 0))).scalar_one()
            insert_ignoring_conflicts(conn, entries, _ROW + _BATCH, [row + batch for row in rows])
            # Writers are serialised, so the ids above `before` are exactly this batch's new rows.
            return self._log(conn, "add", and_(entries.c.bank_id == bank_id, entries.c.id > before))

    def update_entries(
        self,
        bank: str,
        entry_ids: Sequence[int],
        *,
        category: str | None = _UNSET,
        enabled: bool | None = None,
        disabled_until: datetime | None = _UNSET,
        note: str | None = _UNSET,
        tags: Sequence[str] = _UNSET,
    ) -> int:
        """Regrade, annotate, enable or disable entries; returns how many changed (each logged)."""
        target = self.get_bank(bank)
        values: dict[str, Any] = {}
        if category is not _UNSET:
            values["category"] = target.check_category(category)
        if enabled is not None:
            values["enabled"] = enabled
        if disabled_until is not _UNSET:
            values["disabled_until"] = disabled_until
            values.setdefault("enabled", disabled_until is None)
        if note is not _UNSET:
            values["note"] = note
        if tags is not _UNSET:
            values["tags"] = list(tags) or None
        if not values or not entry_ids:
            return 0
        values["updated_at"] = _now()
        where = and_(entries.c.bank_id == target.id, entries.c.id.in_(list(entry_ids)))
        with write_transaction(self.engine) as conn:
            conn.execute(update(entries).where(where).values(**values))
            return self._log(conn, "update", where)

    def release_expired(self, now: datetime | None = None) -> int:
        """Re-enable entries whose ``disabled_until`` has passed; logged as updates. Reading the
        change feed does this on its own; call it to release at a chosen time (``now``)."""
        where = and_(entries.c.disabled_until.is_not(None), entries.c.disabled_until <= (now or _now()))
        with write_transaction(self.engine) as conn:
            ids = list(conn.execute(select(entries.c.id).where(where)).scalars())
            if not ids:
                return 0
            chosen = entries.c.id.in_(ids)
            conn.execute(update(entries).where(chosen).values(enabled=True, disabled_until=None, updated_at=_now()))
            return self._log(conn, "update", chosen)

    def delete_entries(self, bank: str, entry_ids: Sequence[int]) -> int:
        """Delete entries, leaving tombstones in the feed; returns how many went."""
        target = self.get_bank(bank)
        where = and_(entries.c.bank_id == target.id, entries.c.id.in_(list(entry_ids)))
        with write_transaction(self.engine) as conn:
            count = self._log(conn, "delete", where)
            conn.execute(entries.delete().where(where))
        return count

    def find(self, signal: str, value: str, bank: str | None = None) -> list[Entry]:
        """Entries holding exactly this value (normalised first), in every bank or one."""
        value = signals.get(signal).parse(value)
        query = _entry_select().where(entries.c.signal == signal, entries.c.value == value)
        with self.engine.connect() as conn:
            if bank is not None:
                query = query.where(entries.c.bank_id == self._bank(conn, bank).id)
            return [_entry(row) for row in conn.execute(query.order_by(entries.c.id))]

    def get_entries(self, entry_ids: Sequence[int]) -> list[Entry]:
        """Entries by id, in any bank; ids that no longer exist are simply absent."""
        if not entry_ids:
            return []
        query = _entry_select().where(entries.c.id.in_(list(entry_ids)))
        with self.engine.connect() as conn:
            return [_entry(row) for row in conn.execute(query)]

    def hit_rows(self, entry_ids: Sequence[int]) -> list[tuple[int, str, str | None, str, str, bool]]:
        """(id, bank name, category, signal, value, enabled) of entries by id, for reporting matches;
        ids that no longer exist are absent. One statement on this thread's own driver connection:
        SQLAlchemy's cost per query (~0.5 ms), or even its pool's, is many times the database's, and
        this runs on every hit."""
        if not entry_ids:
            return []
        ids = [int(i) for i in entry_ids]
        sql = (
            f"SELECT e.id, b.name, e.category, e.signal, e.value, e.enabled FROM {entries.name} e "
            f"JOIN {banks.name} b ON b.id = e.bank_id WHERE e.id IN ({placeholders(self.engine.dialect, len(ids))})"
        )
        rows = self._readers.fetchall(sql, ids)
        return [(row[0], row[1], row[2], row[3], row[4], bool(row[5])) for row in rows]

    def live_values(self, page: int = 200_000) -> Iterator[list[tuple[int, str, str]]]:
        """(entry id, signal, value) of every enabled entry of every enabled bank, a page at a time:
        what a matcher loads at start before replaying the change log from ``last_seq()`` read first.

        Read through the driver's own cursor (the statement compiled once): at millions of rows,
        SQLAlchemy's per-row Row objects cost more than the database's read."""
        query = (
            select(entries.c.id, entries.c.signal, entries.c.value)
            .join_from(entries, banks, entries.c.bank_id == banks.c.id)
            .where(entries.c.enabled, banks.c.enabled, entries.c.id > bindparam("last"))
            .order_by(entries.c.id)
            .limit(bindparam("page"))
        )
        compiled = query.compile(dialect=self.engine.dialect)
        last = 0
        while True:
            params: Any = compiled.construct_params({"last": last, "page": page})
            if compiled.positiontup is not None:
                params = [params[name] for name in compiled.positiontup]
            with driver_cursor(self.engine) as (_, cursor):
                cursor.execute(compiled.string, params)
                rows = cursor.fetchall()  # tuples, from sqlite3 and psycopg alike
            if not rows:
                return
            last = rows[-1][0]
            yield rows

    def content(self, bank: str, content_id: str) -> list[Entry]:
        """All signals stored for one piece of content."""
        with self.engine.connect() as conn:
            bank_id = self._bank(conn, bank).id
            query = _entry_select().where(entries.c.bank_id == bank_id, entries.c.content_id == content_id)
            return [_entry(row) for row in conn.execute(query.order_by(entries.c.id))]

    def entries(self, bank: str, *, since: int = 0, page: int = 5_000) -> Iterator[Entry]:
        """A bank's current entries in id order, read a page at a time; with ``since``, only those
        added or changed after that change-log cursor."""
        with self.engine.connect() as conn:
            bank_id = self._bank(conn, bank).id
        query = _entry_select().where(entries.c.bank_id == bank_id)
        if since:
            touched = select(changes.c.entry_id).where(changes.c.bank_id == bank_id, changes.c.seq > since)
            query = query.where(entries.c.id.in_(touched))
        last = 0
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(query.where(entries.c.id > last).order_by(entries.c.id).limit(page)).all()
            yield from (_entry(row) for row in rows)
            if len(rows) < page:
                return
            last = rows[-1].id

    def stats(self, bank: str) -> dict[str, Any]:
        """Counts for `bank show`: entries, enabled, and per signal and category."""
        with self.engine.connect() as conn:
            bank_id = self._bank(conn, bank).id
            mine = entries.c.bank_id == bank_id
            total, enabled = conn.execute(
                select(func.count(), func.coalesce(func.sum(entries.c.enabled.cast(Integer)), 0)).where(mine)
            ).one()
            by = {}
            for column in ("signal", "category"):
                col = entries.c[column]
                rows = conn.execute(select(col, func.count()).where(mine).group_by(col).order_by(col))
                by[column] = {str(key): count for key, count in rows}
        return {
            "entries": total,
            "enabled_entries": int(enabled),
            "by_signal": by["signal"],
            "by_category": by["category"],
        }

    # ---- change feed -------------------------------------------------------------------------

    def changes(self, since: int = 0, limit: int = 10_000, bank: str | None = None) -> list[Change]:
        """Changes with seq > since, ascending; page with the last seq as the next ``since``.

        Entries whose ``disabled_until`` has passed are released first, so every consumer
        polling the feed sees them come back without a separate scheduler. A deleted bank's
        name still gives its feed (ending in its tombstones), so its consumers can finish."""
        self._release_due()
        query = select(changes).where(changes.c.seq > since).order_by(changes.c.seq).limit(limit)
        with self.engine.connect() as conn:
            if bank is not None:
                query = query.where(changes.c.bank_id == self._feed_bank_id(conn, bank))
            return [_change(row) for row in conn.execute(query)]

    def feed_state(self) -> tuple[Any, ...]:
        """Something that differs whenever the change log or any bank has changed since it was read:
        the newest seq and the banks' rows, by two small reads on this thread's own driver connection
        (what a follower polling several times a second asks before reading the feed itself)."""
        newest = self._readers.fetchall(f"SELECT max(seq) FROM {changes.name}", ())
        rows = self._readers.fetchall(f"SELECT * FROM {banks.name} ORDER BY id", ())
        return (newest[0][0], *map(tuple, rows))

    def last_seq(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.coalesce(func.max(changes.c.seq), 0))).scalar_one()

    # ---- internals ---------------------------------------------------------------------------

    def _bank(self, conn: Connection, name: str) -> Bank:
        row = conn.execute(select(banks).where(banks.c.name == name)).one_or_none()
        if row is None:
            raise NotFound(f"no bank named {name!r}")
        return _bank(row)

    def _release_due(self) -> None:
        """release_expired, but only after an indexed look finds something due (the common case is a read)."""
        due = select(entries.c.id).where(entries.c.disabled_until.is_not(None), entries.c.disabled_until <= _now())
        due = due.limit(1)  # the partial index on disabled_until answers this without a scan
        with self.engine.connect() as conn:
            if conn.execute(due).first() is None:
                return
        self.release_expired()

    def _feed_bank_id(self, conn: Connection, name: str) -> int:
        """The bank's id, or for a deleted bank the id its changes were logged under."""
        row = conn.execute(select(banks.c.id).where(banks.c.name == name)).first()
        if row is None:
            last = select(changes.c.bank_id).where(changes.c.bank_name == name).order_by(changes.c.seq.desc())
            row = conn.execute(last.limit(1)).first()
        if row is None:
            raise NotFound(f"no bank named {name!r}")
        return row[0]

    def _log(self, conn: Connection, op: str, where: Any) -> int:
        """Append one change per entry matching ``where`` (before a delete, after an add or update)."""
        source = (
            select(
                literal(op),
                literal(_now()),
                entries.c.id,
                entries.c.bank_id,
                banks.c.name,
                *(entries.c[name] for name in _SNAPSHOT),
                and_(entries.c.enabled, banks.c.enabled),
            )
            .join_from(entries, banks, entries.c.bank_id == banks.c.id)
            .where(where)
            .order_by(entries.c.id)
        )
        columns = ["op", "at", "entry_id", "bank_id", "bank_name", *_SNAPSHOT, "enabled"]
        last = select(func.coalesce(func.max(changes.c.seq), 0))
        before = conn.execute(last).scalar_one()
        conn.execute(insert(changes).from_select(columns, source))
        # Not rowcount: psycopg reports -1 for INSERT ... SELECT through SQLAlchemy.
        return conn.execute(last).scalar_one() - before

    def _log_bank(self, conn: Connection, bank_id: int, op: str) -> int:
        return self._log(conn, op, entries.c.bank_id == bank_id)


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 200 or any(ch.isspace() and ch != " " for ch in name):
        raise ValueError(f"bank name must be 1-200 characters without tabs or newlines, got {name!r}")
    return name


def _entry_select() -> Any:
    return select(entries, banks.c.name.label("bank_name")).join_from(entries, banks, entries.c.bank_id == banks.c.id)


def _bank(row: Any) -> Bank:
    return Bank(
        id=row.id,
        name=row.name,
        description=row.description,
        taxonomy=row.taxonomy,
        enabled=row.enabled,
        thresholds=dict(row.thresholds or {}),
        categories=dict(row.categories or {}),
        created_at=row.created_at,
    )


def _snapshot(row: Any) -> dict[str, Any]:
    """The entry fields an Entry and a Change both carry, from a row joined with its bank's name."""
    fields = {name: getattr(row, name) for name in _SNAPSHOT}
    fields["tags"] = tuple(row.tags or ())
    return {"bank": row.bank_name, "enabled": row.enabled, **fields}


def _entry(row: Any) -> Entry:
    return Entry(id=row.id, **_snapshot(row))


def _change(row: Any) -> Change:
    return Change(seq=row.seq, op=row.op, entry_id=row.entry_id, bank_id=row.bank_id, at=row.at, **_snapshot(row))
