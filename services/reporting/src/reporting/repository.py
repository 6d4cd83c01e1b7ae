"""Every query of the reporting service."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from ti_shared.db import Database, applied_version, consumer_offset, dialect_of, in_values, lookup_chunks, upsert

from reporting.aggregates import EVERY_SCOPE, MEDIAN_NAME, PROGRAMME_KIND, CounterKey, RefKey, cents, median_twice
from reporting.domain import NATIONAL, ActionRow, AsOf, GrantRow, Row, SiteRow, States, TerritoryRow
from reporting.tables import (
    ENTITY_TABLES,
    indicator_counter,
    indicator_ref,
    indicator_scope,
    metadata,
    rebuild_run,
    reporting_generation,
)

ROW_TYPES: dict[str, type[Any]] = {"territory": TerritoryRow, "action": ActionRow, "grant": GrantRow, "site": SiteRow}
_TUPLE_FIELDS = {"epci_sirens", "themes", "contributions"}
CHUNK = 1000


def entity_of_row(row: Row) -> str:
    return {TerritoryRow: "territory", ActionRow: "action", GrantRow: "grant", SiteRow: "site"}[type(row)]


_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in ROW_TYPES.values()}


def _to_record(generation: int, row: Row) -> dict[str, Any]:
    record: dict[str, Any] = {"generation": generation}
    for name in _FIELD_NAMES[type(row)]:
        value = getattr(row, name)
        record[name] = list(value) if name in _TUPLE_FIELDS else value
    return record


def _from_record(entity: str, record: Any) -> Row:
    cls = ROW_TYPES[entity]
    values = {}
    for f in dataclasses.fields(cls):
        value = getattr(record, f.name)
        if f.name in _TUPLE_FIELDS:
            value = tuple(value or ())
        elif f.name == "time" and value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        values[f.name] = value
    row: Row = cls(**values)
    return row


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _keyed(session: AsyncSession, items: Sequence[Any]) -> Iterable[tuple[str, list[Any]]]:
    """The dialect and the chunks of keys to look up with :func:`in_values`."""
    dialect = dialect_of(session)
    for chunk in lookup_chunks(items, dialect, size=CHUNK):
        yield dialect, chunk


# --- generations ------------------------------------------------------------------------------


async def current_generation(session: AsyncSession) -> int:
    value = (await session.execute(sa.select(reporting_generation.c.current).where(reporting_generation.c.id == 1))).scalar()
    return int(value) if value is not None else 1


async def set_current_generation(session: AsyncSession, generation: int) -> None:
    ins = upsert(dialect_of(session), reporting_generation)
    await session.execute(
        ins.values(id=1, current=generation).on_conflict_do_update(index_elements=["id"], set_={"current": generation})
    )


async def highest_generation(session: AsyncSession) -> int:
    runs = (await session.execute(sa.select(sa.func.max(rebuild_run.c.generation)))).scalar()
    return max(int(runs or 0), await current_generation(session))


async def delete_generation(session: AsyncSession, generation: int) -> None:
    for table in metadata.sorted_tables:
        if "generation" in table.c and table is not rebuild_run:
            await session.execute(table.delete().where(table.c.generation == generation))


async def delete_generations_except(session: AsyncSession, keep: int) -> None:
    for table in metadata.sorted_tables:
        if "generation" in table.c and table is not rebuild_run:
            await session.execute(table.delete().where(table.c.generation != keep))


async def hand_over_consumer(session: AsyncSession, source: str, target: str) -> None:
    """Give ``target`` the offsets and applied versions of ``source`` (then forget ``source``)."""
    for table, keys in (
        (consumer_offset, ("topic", "partition", "next_offset")),
        (applied_version, ("topic", "subject", "version")),
    ):
        await session.execute(table.delete().where(table.c.consumer == target))
        cols = [table.c[k] for k in keys]
        await session.execute(
            table.insert().from_select(
                ["consumer", *keys], sa.select(sa.literal(target, sa.String()), *cols).where(table.c.consumer == source)
            )
        )
        await session.execute(table.delete().where(table.c.consumer == source))


async def forget_consumer(session: AsyncSession, name: str) -> None:
    for table in (consumer_offset, applied_version):
        await session.execute(table.delete().where(table.c.consumer == name))


# --- projections ------------------------------------------------------------------------------


async def load_rows(session: AsyncSession, generation: int, entity: str, ids: Iterable[str]) -> dict[str, Row]:
    state, _ = ENTITY_TABLES[entity]
    out: dict[str, Row] = {}
    for dialect, chunk in _keyed(session, sorted(set(ids))):
        result = await session.execute(
            sa.select(state).where(state.c.generation == generation, in_values(state.c.id, chunk, dialect))
        )
        for record in result:
            out[record.id] = _from_record(entity, record)
    return out


async def territory_regions(session: AsyncSession, generation: int, ids: Iterable[str]) -> dict[str, str]:
    """The region of each of the given territories that is known."""
    state, _ = ENTITY_TABLES["territory"]
    out: dict[str, str] = {}
    for dialect, chunk in _keyed(session, sorted(set(ids))):
        result = await session.execute(
            sa.select(state.c.id, state.c.region_code).where(
                state.c.generation == generation, in_values(state.c.id, chunk, dialect)
            )
        )
        out.update({r.id: r.region_code for r in result})
    return out


async def known_territories(session: AsyncSession, generation: int) -> list[str]:
    state, _ = ENTITY_TABLES["territory"]
    result = await session.execute(sa.select(state.c.id).where(state.c.generation == generation))
    return [r.id for r in result]


async def rows_of_territories(session: AsyncSession, generation: int, entity: str, territory_ids: Iterable[str]) -> list[Row]:
    """The current states of the actions, grants or sites carrying one of the given territories."""
    state, _ = ENTITY_TABLES[entity]
    out: list[Row] = []
    for dialect, chunk in _keyed(session, sorted(set(territory_ids))):
        result = await session.execute(
            sa.select(state).where(state.c.generation == generation, in_values(state.c.territory_id, chunk, dialect))
        )
        out.extend(_from_record(entity, r) for r in result)
    return out


_PG = postgresql.dialect()  # type: ignore[no-untyped-call]


def _array_type(column: sa.Column[Any]) -> str:
    if column.name in _TUPLE_FIELDS:
        return "text"
    return str(column.type.compile(dialect=_PG))


def _unnest_insert(table: sa.Table, conflict: str) -> sa.TextClause:
    """``INSERT … SELECT FROM unnest(<one array per column>) ON CONFLICT …`` (PostgreSQL, one statement)."""
    names = [c.name for c in table.columns]
    quoted = ", ".join(f'"{n}"' for n in names)
    arrays = ", ".join(f"CAST(:{n} AS {_array_type(table.c[n])}[])" for n in names)
    selected = ", ".join(f'u."{n}"::jsonb' if n in _TUPLE_FIELDS else f'u."{n}"' for n in names)
    return sa.text(f"INSERT INTO {table.name} ({quoted}) SELECT {selected} FROM unnest({arrays}) AS u({quoted}) {conflict}")


_UNNEST_STATEMENTS: dict[str, sa.TextClause] = {}


def _statement(table: sa.Table, history: bool) -> sa.TextClause:
    stmt = _UNNEST_STATEMENTS.get(table.name)
    if stmt is None:
        if history:
            conflict = "ON CONFLICT (generation, id, version) DO NOTHING"
        else:
            updated = [c.name for c in table.columns if c.name not in ("generation", "id")]
            conflict = (
                "ON CONFLICT (generation, id) DO UPDATE SET "
                + ", ".join(f'"{n}" = excluded."{n}"' for n in updated)
                + f" WHERE {table.name}.version < excluded.version"
            )
        stmt = _UNNEST_STATEMENTS[table.name] = _unnest_insert(table, conflict)
    return stmt


def _columns_of(table: sa.Table, generation: int, rows: Sequence[Row]) -> dict[str, list[Any]]:
    fields = _FIELD_NAMES[type(rows[0])]
    out: dict[str, list[Any]] = {"generation": [generation] * len(rows)}
    for name in fields:
        values = [getattr(r, name) for r in rows]
        out[name] = [orjson.dumps(list(v)).decode() for v in values] if name in _TUPLE_FIELDS else values
    return out


async def save_rows(session: AsyncSession, generation: int, entity: str, latest: list[Row], every: list[Row]) -> None:
    """Upsert the current states (a newer version only) and add every version to the history."""
    state, history = ENTITY_TABLES[entity]
    dialect = dialect_of(session)
    if dialect == "postgresql":
        for table, rows in ((state, latest), (history, every)):
            for chunk in _chunks(rows, 20000):
                await session.execute(_statement(table, table is history), _columns_of(table, generation, chunk))
        return
    if latest:
        ins = upsert(dialect, state)
        columns = [c.name for c in state.columns if c.name not in ("generation", "id")]
        stmt = ins.on_conflict_do_update(
            index_elements=["generation", "id"],
            set_={name: ins.excluded[name] for name in columns},
            where=state.c.version < ins.excluded.version,
        )
        for chunk in _chunks([_to_record(generation, r) for r in latest]):
            await session.execute(stmt, list(chunk))
    if every:
        hist = upsert(dialect, history).on_conflict_do_nothing(index_elements=["generation", "id", "version"])
        for chunk in _chunks([_to_record(generation, r) for r in every]):
            await session.execute(hist, list(chunk))


async def load_states(session: AsyncSession, generation: int) -> States:
    """The current state of every entity of a generation."""
    states = States()
    for entity, (state, _) in ENTITY_TABLES.items():
        result = await session.execute(sa.select(state).where(state.c.generation == generation))
        getattr(states, entity + "s" if entity != "territory" else "territories").extend(
            _from_record(entity, r) for r in result
        )
    return states


async def load_states_as_of(session: AsyncSession, generation: int, as_of: AsOf) -> States:
    """The state of every entity as of an instant: its latest version whose event time is within the bound."""
    states = States()
    for entity, (_, history) in ENTITY_TABLES.items():
        in_time = history.c.time <= as_of.instant if as_of.inclusive else history.c.time < as_of.instant
        latest = (
            sa.select(history.c.id, sa.func.max(history.c.version).label("version"))
            .where(history.c.generation == generation, in_time)
            .group_by(history.c.id)
            .subquery()
        )
        query = sa.select(history).join(
            latest, sa.and_(history.c.id == latest.c.id, history.c.version == latest.c.version)
        ).where(history.c.generation == generation)
        result = await session.execute(query)
        getattr(states, entity + "s" if entity != "territory" else "territories").extend(
            _from_record(entity, r) for r in result
        )
    return states


# --- aggregates -------------------------------------------------------------------------------


async def add_counters(session: AsyncSession, generation: int, deltas: dict[CounterKey, int]) -> None:
    """Add signed deltas to the counters (one bulk upsert)."""
    if not deltas:
        return
    keys = sorted(deltas)
    if dialect_of(session) == "postgresql":
        stmt = sa.text(
            "INSERT INTO indicator_counter (generation, scope, name, value) "
            "SELECT :generation, s, n, v FROM unnest(CAST(:scopes AS text[]), CAST(:names AS text[]), "
            "CAST(:values AS bigint[])) AS t(s, n, v) "
            "ON CONFLICT (generation, scope, name) DO UPDATE SET value = indicator_counter.value + excluded.value"
        )
        for chunk in _chunks(keys, 20000):
            await session.execute(
                stmt,
                {"generation": generation, "scopes": [k[0] for k in chunk], "names": [k[1] for k in chunk],
                 "values": [deltas[k] for k in chunk]},
            )
        return
    ins = upsert(dialect_of(session), indicator_counter)
    upd = ins.on_conflict_do_update(
        index_elements=["generation", "scope", "name"], set_={"value": indicator_counter.c.value + ins.excluded.value}
    )
    rows = [{"generation": generation, "scope": k[0], "name": k[1], "value": deltas[k]} for k in keys]
    for chunk in _chunks(rows, 5000):
        await session.execute(upd, list(chunk))


async def add_refs(session: AsyncSession, generation: int, deltas: dict[RefKey, int]) -> None:
    """Add signed deltas to the reference counts (one bulk upsert)."""
    if not deltas:
        return
    keys = sorted(deltas)
    if dialect_of(session) == "postgresql":
        stmt = sa.text(
            "INSERT INTO indicator_ref (generation, scope, kind, value, refcount) "
            "SELECT :generation, s, k, v, n FROM unnest(CAST(:scopes AS text[]), CAST(:kinds AS text[]), "
            "CAST(:values AS text[]), CAST(:counts AS integer[])) AS t(s, k, v, n) "
            "ON CONFLICT (generation, scope, kind, value) DO UPDATE SET refcount = indicator_ref.refcount + excluded.refcount"
        )
        for chunk in _chunks(keys, 20000):
            await session.execute(
                stmt,
                {"generation": generation, "scopes": [k[0] for k in chunk], "kinds": [k[1] for k in chunk],
                 "values": [k[2] for k in chunk], "counts": [deltas[k] for k in chunk]},
            )
        return
    ins = upsert(dialect_of(session), indicator_ref)
    upd = ins.on_conflict_do_update(
        index_elements=["generation", "scope", "kind", "value"],
        set_={"refcount": indicator_ref.c.refcount + ins.excluded.refcount},
    )
    rows = [{"generation": generation, "scope": k[0], "kind": k[1], "value": k[2], "refcount": deltas[k]} for k in keys]
    for chunk in _chunks(rows, 5000):
        await session.execute(upd, list(chunk))


async def programme_refs(session: AsyncSession, generation: int) -> dict[str, int]:
    """How many grants (any status) carry each programme."""
    result = await session.execute(
        sa.select(indicator_ref.c.value, indicator_ref.c.refcount).where(
            indicator_ref.c.generation == generation, indicator_ref.c.scope == EVERY_SCOPE,
            indicator_ref.c.kind == PROGRAMME_KIND,
        )
    )
    return {r.value: int(r.refcount) for r in result}


async def update_medians(session: AsyncSession, generation: int, scopes: Iterable[str]) -> None:
    """Recompute the area median of the labelled sites of the given scopes from the site projection."""
    state, _ = ENTITY_TABLES["site"]
    wanted = set(scopes)
    areas: dict[str, list[int]] = {s: [] for s in wanted}
    labelled = sa.and_(state.c.generation == generation, state.c.status == "labelled")
    if NATIONAL in wanted:
        result = await session.execute(sa.select(state.c.area_ha).where(labelled).order_by(state.c.area_ha))
        areas[NATIONAL] = [cents(r.area_ha) for r in result]
    for kind, column in (("region", state.c.region_code), ("territory", state.c.territory_id)):
        codes = sorted(s.partition(":")[2] for s in wanted if s.startswith(kind + ":"))
        for chunk in _chunks(codes):
            result = await session.execute(
                sa.select(column.label("code"), state.c.area_ha).where(labelled, column.in_(chunk)).order_by(column, state.c.area_ha)
            )
            for r in result:
                areas[f"{kind}:{r.code}"].append(cents(r.area_ha))
    medians = {s: median_twice(values) for s, values in areas.items()}
    present = sorted(s for s, m in medians.items() if m is not None)
    absent = sorted(s for s, m in medians.items() if m is None)
    for chunk in _chunks(absent):
        await session.execute(
            indicator_counter.delete().where(
                indicator_counter.c.generation == generation, indicator_counter.c.name == MEDIAN_NAME,
                indicator_counter.c.scope.in_(chunk),
            )
        )
    if present:
        ins = upsert(dialect_of(session), indicator_counter)
        stmt = ins.on_conflict_do_update(index_elements=["generation", "scope", "name"], set_={"value": ins.excluded.value})
        rows = [{"generation": generation, "scope": s, "name": MEDIAN_NAME, "value": medians[s]} for s in present]
        for chunk in _chunks(rows):
            await session.execute(stmt, list(chunk))


async def load_counters(session: AsyncSession, generation: int, scopes: Iterable[str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for dialect, chunk in _keyed(session, sorted(set(scopes))):
        result = await session.execute(
            sa.select(indicator_counter.c.scope, indicator_counter.c.name, indicator_counter.c.value).where(
                indicator_counter.c.generation == generation, in_values(indicator_counter.c.scope, chunk, dialect)
            )
        )
        for scope, name, value in result:
            out.setdefault(scope, {})[name] = int(value)
    return out


async def load_distinct_counts(session: AsyncSession, generation: int, scopes: Iterable[str]) -> dict[str, dict[str, int]]:
    """Per scope and kind, the number of values with a positive reference count."""
    out: dict[str, dict[str, int]] = {}
    for dialect, chunk in _keyed(session, sorted(set(scopes))):
        result = await session.execute(
            sa.select(indicator_ref.c.scope, indicator_ref.c.kind, sa.func.count())
            .where(
                indicator_ref.c.generation == generation,
                in_values(indicator_ref.c.scope, chunk, dialect),
                indicator_ref.c.refcount > 0,
            )
            .group_by(indicator_ref.c.scope, indicator_ref.c.kind)
        )
        for scope, kind, count in result:
            out.setdefault(scope, {})[kind] = int(count)
    return out


async def load_aggregates(session: AsyncSession, generation: int) -> tuple[dict[CounterKey, int], dict[RefKey, int]]:
    """Every counter and reference count of a generation (checks and tests)."""
    counters = await session.execute(
        sa.select(indicator_counter.c.scope, indicator_counter.c.name, indicator_counter.c.value).where(
            indicator_counter.c.generation == generation
        )
    )
    refs = await session.execute(
        sa.select(indicator_ref.c.scope, indicator_ref.c.kind, indicator_ref.c.value, indicator_ref.c.refcount).where(
            indicator_ref.c.generation == generation
        )
    )
    return (
        {(r.scope, r.name): int(r.value) for r in counters},
        {(r.scope, r.kind, r.value): int(r.refcount) for r in refs},
    )


# --- indicators -------------------------------------------------------------------------------


def digest_of(doc: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def digest_of_document(document: bytes) -> str:
    return hashlib.sha256(document).hexdigest()[:32]


async def scope_digests(session: AsyncSession, generation: int, scopes: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for dialect, chunk in _keyed(session, sorted(set(scopes))):
        result = await session.execute(
            sa.select(indicator_scope.c.scope, indicator_scope.c.digest).where(
                indicator_scope.c.generation == generation, in_values(indicator_scope.c.scope, chunk, dialect)
            )
        )
        out.update({r.scope: r.digest for r in result})
    return out


async def write_documents(session: AsyncSession, generation: int, documents: dict[str, bytes], at: datetime) -> None:
    """Replace the materialised indicator documents of the given scopes."""
    if not documents:
        return
    ins = upsert(dialect_of(session), indicator_scope)
    stmt = ins.on_conflict_do_update(
        index_elements=["generation", "scope"],
        set_={"digest": ins.excluded.digest, "computed_at": ins.excluded.computed_at, "document": ins.excluded.document},
    )
    records = [
        {"generation": generation, "scope": s, "digest": digest_of_document(doc), "computed_at": at, "document": doc.decode()}
        for s, doc in sorted(documents.items())
    ]
    for chunk in _chunks(records):
        await session.execute(stmt, list(chunk))


@dataclasses.dataclass(frozen=True)
class StoredIndicators:
    generation: int
    computed_at: datetime
    digest: str
    document: str
    """The indicators as JSON text."""


async def read_live_mark(db: Database) -> tuple[int, datetime | None]:
    """The live generation and the latest ``computed_at`` of its documents (one statement)."""
    live = sa.func.coalesce(
        sa.select(reporting_generation.c.current).where(reporting_generation.c.id == 1).scalar_subquery(), 1
    )
    latest = sa.select(sa.func.max(indicator_scope.c.computed_at)).where(indicator_scope.c.generation == live)
    async with db.read_engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        row = (await autocommit.execute(sa.select(live.label("generation"), latest.scalar_subquery().label("at")))).one()
    at = row.at
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return int(row.generation), at


async def read_indicators(session: AsyncSession | AsyncConnection, scope: str) -> StoredIndicators | None:
    """The materialised indicators of a scope in the live generation (one indexed row read)."""
    live = sa.select(reporting_generation.c.current).where(reporting_generation.c.id == 1).scalar_subquery()
    query = sa.select(
        indicator_scope.c.generation, indicator_scope.c.computed_at, indicator_scope.c.digest, indicator_scope.c.document
    ).where(indicator_scope.c.scope == scope, indicator_scope.c.generation == sa.func.coalesce(live, 1))
    row = (await session.execute(query)).first()
    if row is None:
        return None
    computed_at = row.computed_at if row.computed_at.tzinfo else row.computed_at.replace(tzinfo=UTC)
    return StoredIndicators(int(row.generation), computed_at, row.digest, row.document)


async def territory_known(session: AsyncSession, generation: int, territory_id: str) -> bool:
    state, _ = ENTITY_TABLES["territory"]
    result = await session.execute(
        sa.select(state.c.id).where(state.c.generation == generation, state.c.id == territory_id).limit(1)
    )
    return result.first() is not None


# --- rebuild runs -----------------------------------------------------------------------------


async def start_run(session: AsyncSession, generation: int, at: datetime) -> None:
    await session.execute(
        rebuild_run.insert().values(generation=generation, state="running", started_at=at, events_applied=0)
    )


async def update_run(session: AsyncSession, generation: int, **values: Any) -> None:
    await session.execute(rebuild_run.update().where(rebuild_run.c.generation == generation).values(**values))


async def latest_run(session: AsyncSession) -> dict[str, Any] | None:
    result = await session.execute(sa.select(rebuild_run).order_by(rebuild_run.c.generation.desc()).limit(1))
    row = result.first()
    return dict(row._mapping) if row is not None else None
