"""Every query of the reporting service."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from ti_shared.db import applied_version, consumer_offset, dialect_of, upsert

from reporting.domain import ActionRow, AsOf, GrantRow, Row, SiteRow, States, TerritoryRow
from reporting.tables import (
    ENTITY_TABLES,
    indicator_scope,
    indicator_value,
    metadata,
    rebuild_run,
    reporting_generation,
)

ROW_TYPES: dict[str, type[Any]] = {"territory": TerritoryRow, "action": ActionRow, "grant": GrantRow, "site": SiteRow}
_TUPLE_FIELDS = {"epci_sirens", "themes", "contributions"}
CHUNK = 1000


def entity_of_row(row: Row) -> str:
    return {TerritoryRow: "territory", ActionRow: "action", GrantRow: "grant", SiteRow: "site"}[type(row)]


def _to_record(generation: int, row: Row) -> dict[str, Any]:
    record = dataclasses.asdict(row)
    for name in _TUPLE_FIELDS & record.keys():
        record[name] = list(record[name])
    record["generation"] = generation
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
    for chunk in _chunks(sorted(set(ids))):
        result = await session.execute(sa.select(state).where(state.c.generation == generation, state.c.id.in_(chunk)))
        for record in result:
            out[record.id] = _from_record(entity, record)
    return out


async def save_rows(session: AsyncSession, generation: int, entity: str, latest: list[Row], every: list[Row]) -> None:
    """Upsert the current states (a newer version only) and add every version to the history."""
    state, history = ENTITY_TABLES[entity]
    dialect = dialect_of(session)
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


# --- indicators -------------------------------------------------------------------------------


def digest_of(doc: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


async def scope_digests(session: AsyncSession, generation: int, scopes: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for chunk in _chunks(sorted(set(scopes))):
        result = await session.execute(
            sa.select(indicator_scope.c.scope, indicator_scope.c.digest).where(
                indicator_scope.c.generation == generation, indicator_scope.c.scope.in_(chunk)
            )
        )
        out.update({r.scope: r.digest for r in result})
    return out


async def write_indicators(session: AsyncSession, generation: int, docs: dict[str, dict[str, Any]], at: datetime) -> None:
    """Replace the materialised rows of the given scopes."""
    if not docs:
        return
    scopes = sorted(docs)
    for chunk in _chunks(scopes):
        await session.execute(
            indicator_value.delete().where(indicator_value.c.generation == generation, indicator_value.c.scope.in_(chunk))
        )
    values = [
        {"generation": generation, "scope": scope, "code": code, "position": pos, "value": json.dumps(value, ensure_ascii=False)}
        for scope in scopes
        for pos, (code, value) in enumerate(docs[scope].items())
    ]
    for chunk in _chunks(values, 2000):
        await session.execute(indicator_value.insert(), list(chunk))
    ins = upsert(dialect_of(session), indicator_scope)
    stmt = ins.on_conflict_do_update(
        index_elements=["generation", "scope"], set_={"digest": ins.excluded.digest, "computed_at": ins.excluded.computed_at}
    )
    records = [{"generation": generation, "scope": s, "digest": digest_of(docs[s]), "computed_at": at} for s in scopes]
    for chunk in _chunks(records):
        await session.execute(stmt, list(chunk))


@dataclasses.dataclass(frozen=True)
class StoredIndicators:
    generation: int
    computed_at: datetime
    digest: str
    indicators: dict[str, Any]


async def read_indicators(session: AsyncSession, scope: str) -> StoredIndicators | None:
    """The materialised indicators of a scope in the live generation (one statement: one snapshot)."""
    live = sa.select(reporting_generation.c.current).where(reporting_generation.c.id == 1).scalar_subquery()
    generation = sa.func.coalesce(live, 1)
    query = (
        sa.select(
            indicator_scope.c.generation, indicator_scope.c.computed_at, indicator_scope.c.digest,
            indicator_value.c.code, indicator_value.c.value,
        )
        .select_from(
            indicator_scope.outerjoin(
                indicator_value,
                sa.and_(indicator_value.c.generation == indicator_scope.c.generation, indicator_value.c.scope == indicator_scope.c.scope),
            )
        )
        .where(indicator_scope.c.scope == scope, indicator_scope.c.generation == generation)
        .order_by(indicator_value.c.position)
    )
    rows = (await session.execute(query)).all()
    if not rows:
        return None
    first = rows[0]
    computed_at = first.computed_at if first.computed_at.tzinfo else first.computed_at.replace(tzinfo=UTC)
    indicators = {r.code: json.loads(r.value) for r in rows if r.code is not None}
    return StoredIndicators(int(first.generation), computed_at, first.digest, indicators)


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
