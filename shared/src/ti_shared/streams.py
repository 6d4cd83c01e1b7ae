"""A deterministic generator of realistic programme event streams (CONTRACT §5), for tests and benchmarks.

``generate_stream(seed=…)`` returns the CloudEvents (as dicts) that the four owning services would
publish for a synthetic programme: territories across regions, actions with several versions (some
deleted), grants (commitments, amendments, disbursements, cancellations) and sites. Options add
duplicates, stale redeliveries and a shuffled interleaving (the order of each entity's own events
is always kept, as Kafka keeps it per key). ``final_states(events)`` gives the latest version of
every entity, from which indicators can be computed independently.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from ti_shared.bus import OutgoingMessage, make_publisher
from ti_shared.events import CONTENT_TYPE, event_type, topic_for_type
from ti_shared.geo import DEPARTEMENTS, REGIONS
from ti_shared.settings import PlatformSettings
from ti_shared.types import luhn_complete
from ti_shared.vocabulary import (
    ACTION_STATUSES,
    AXES,
    BENEFICIARY_KINDS,
    DEFAULT_PROGRAMMES,
    MATURITIES,
    OBJECTIVES,
    THEMES,
    VALUE_CHAINS,
)

PROGRAMMES = DEFAULT_PROGRAMMES

ENTITY_OF_TYPE_PREFIX = ("territory", "action", "grant", "site")


@dataclass(frozen=True)
class StreamOptions:
    """Sizes and delivery defects of a generated stream."""

    territories: int = 40
    actions: int = 700
    grants: int = 160
    sites: int = 40
    start: datetime = datetime(2024, 1, 1, tzinfo=UTC)
    end: datetime = datetime(2024, 12, 31, tzinfo=UTC)
    #: share of events delivered a second time (same event id), later in the stream
    duplicate_rate: float = 0.0
    #: share of events re-delivered after a newer version of their entity
    stale_rate: float = 0.0
    #: interleave the entities' event sequences at random (each entity's own order kept)
    shuffle: bool = False
    #: actions pointing at a territory that is never registered
    unknown_territory_actions: int = 5


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')):f}"


class _Builder:
    def __init__(self, rng: random.Random, options: StreamOptions) -> None:
        self.rng = rng
        self.options = options
        self.sequences: list[list[dict[str, Any]]] = []

    def times(self, count: int) -> list[datetime]:
        span = (self.options.end - self.options.start).total_seconds()
        first = self.rng.uniform(0, span * 0.7)
        points = sorted(self.rng.uniform(first, span) for _ in range(count - 1))
        out = [self.options.start + timedelta(seconds=int(first))]
        for p in points:
            t = self.options.start + timedelta(seconds=int(p))
            out.append(max(t, out[-1] + timedelta(seconds=1)))
        return out

    def event(self, entity: str, change: str, subject: str, version: int, time: datetime, data: dict[str, Any]) -> dict[str, Any]:
        source = {
            "territory": "/services/territory-registry",
            "action": "/services/action-tracker",
            "grant": "/services/funding-ledger",
            "site": "/services/site-catalog",
        }[entity]
        body = {**data, "version": version, "updated_at": _instant(time)}
        return {
            "specversion": "1.0",
            "id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "source": source,
            "type": event_type(entity, change),
            "subject": subject,
            "time": _instant(time),
            "datacontenttype": "application/json",
            "entityversion": version,
            "tiactor": f"{entity}-writer",
            "data": body,
        }

    # -- territories ---------------------------------------------------------------------------

    def territories(self) -> list[tuple[str, str]]:
        rng = self.rng
        regions = list(REGIONS)
        placed: list[tuple[str, str]] = []
        counters: dict[str, int] = {}
        siren_seq = 20000000
        for i in range(self.options.territories):
            region = regions[i % len(regions)] if i < len(regions) else rng.choice(regions)
            counters[region] = counters.get(region, 0) + 1
            tid = f"ti-{region}{counters[region]:02d}"
            deps = [d for d, (_n, r) in DEPARTEMENTS.items() if r == region]
            epcis: list[dict[str, str]] = []
            for _ in range(rng.randint(1, 4)):
                siren_seq += rng.randint(1, 50)
                epcis.append({"siren": luhn_complete(f"{siren_seq:08d}"), "name": f"CC {tid} {len(epcis) + 1}"})
            if rng.random() < 0.1 and epcis:
                epcis.append(dict(rng.choice(epcis)))  # an EPCI listed twice
            lead_in_post = rng.random() < 0.85
            data: dict[str, Any] = {
                "id": tid,
                "name": f"Territoire d'industrie {tid}",
                "region_code": region,
                "departement_codes": sorted(rng.sample(deps, min(len(deps), rng.randint(1, 2)))),
                "epcis": epcis,
                "phase": "temps-2",
                "labelled_on": "2023-11-09",
                "project_lead": (
                    {"in_post": lead_in_post, "cofinanced": lead_in_post and rng.random() < 0.85,
                     "name": f"Chef de projet {tid}", "email": f"cdp.{tid}@example.org"}
                    if rng.random() < 0.95 else None
                ),
                "launch_copil_held_on": None,
                "status": "active",
            }
            n_versions = rng.choice((1, 1, 2, 3))
            times = self.times(n_versions)
            seq = [self.event("territory", "registered", tid, 1, times[0], data)]
            for v in range(2, n_versions + 1):
                data = {**data}
                roll = rng.random()
                if roll < 0.15 and v == n_versions:
                    data["status"] = "withdrawn"
                    change = "withdrawn"
                elif roll < 0.3:
                    other = rng.choice(regions)
                    data["region_code"] = other
                    change = "updated"
                else:
                    data["launch_copil_held_on"] = times[v - 1].date().isoformat()
                    if data["project_lead"] is not None:
                        data["project_lead"] = {**data["project_lead"], "in_post": True}
                    change = "updated"
                seq.append(self.event("territory", change, tid, v, times[v - 1], data))
            self.sequences.append(seq)
            placed.append((tid, region))
        return placed

    # -- actions -------------------------------------------------------------------------------

    def actions(self, territory_ids: list[str]) -> None:
        rng = self.rng
        unknown = [f"ti-00{n:02d}" for n in range(1, 4)]
        for i in range(self.options.actions + self.options.unknown_territory_actions):
            aid = f"GRIST-{i + 1:05d}"
            tid = rng.choice(territory_ids) if i < self.options.actions else rng.choice(unknown)
            data: dict[str, Any] = {
                "id": aid,
                "territory_id": tid,
                "title": f"Action {aid}",
                "description": "",
                "axis": rng.choices(AXES, weights=(32, 18, 18, 24, 8))[0],
                "themes": sorted(rng.sample(THEMES, rng.choice((0, 1, 1, 1, 2, 3)))),
                "status": rng.choices(ACTION_STATUSES, weights=(20, 19, 36, 4, 13, 1, 8))[0],
                "planned_start": "2024-01-15",
                "planned_end": None,
                "budget_eur": _money(Decimal(rng.randint(5, 500) * 1000)),
                "partners": rng.sample(["BPI", "ADEME", "BDT", "Région"], rng.randint(0, 2)),
            }
            n_versions = rng.choice((1, 2, 2, 3, 3, 4))
            times = self.times(n_versions)
            seq = [self.event("action", "created", aid, 1, times[0], data)]
            for v in range(2, n_versions + 1):
                data = {**data}
                if v == n_versions and rng.random() < 0.08:
                    data["deleted"] = True
                    change = "deleted"
                elif rng.random() < 0.6:
                    data["status"] = rng.choice(ACTION_STATUSES)
                    change = "status_changed"
                else:
                    data["axis"] = rng.choice(AXES)
                    data["themes"] = sorted(rng.sample(THEMES, rng.randint(0, 3)))
                    change = "updated"
                seq.append(self.event("action", change, aid, v, times[v - 1], data))
            self.sequences.append(seq)

    # -- grants --------------------------------------------------------------------------------

    def commune(self, region: str | None) -> str:
        rng = self.rng
        deps = [d for d, (_n, r) in DEPARTEMENTS.items() if region is None or r == region] or list(DEPARTEMENTS)
        dep = rng.choice(deps)
        if len(dep) == 3:
            return dep + f"{rng.randint(1, 60):02d}"
        return dep + f"{rng.randint(1, 600):03d}"

    def grants(self, territories: list[tuple[str, str]]) -> None:
        rng = self.rng
        programmes = [*PROGRAMMES, "france_2030_autre"]
        for i in range(self.options.grants):
            programme = rng.choices(programmes, weights=(50, 20, 8, 6, 8, 6, 2))[0]
            operator = rng.choice(PROGRAMMES.get(programme, ("BPI",)))
            ref = f"{programme[:3].upper()}-2024-{i + 1:04d}"
            gid = f"{operator}/{ref}"
            picked, region = rng.choice(territories)
            tid: str | None = None if rng.random() < 0.05 else picked
            commune = None if (tid is not None and rng.random() < 0.1) else self.commune(region if rng.random() < 0.9 else None)
            amount = Decimal(rng.randint(20, 3000) * 1000) + Decimal(rng.randint(0, 99)) / 100
            data: dict[str, Any] = {
                "id": gid,
                "operator": operator,
                "operator_ref": ref,
                "programme": programme,
                "beneficiary": {"name": f"Bénéficiaire {i + 1}", "siret": luhn_complete(f"{73282932000000 + i * 10:013d}"[:13]), "rna": None, "kind": rng.choice(BENEFICIARY_KINDS)},
                "territory_id": tid,
                "commune_insee": commune,
                "action_id": None,
                "object": f"Projet industriel {i + 1}",
                "amount_eur": _money(amount),
                "investment_eur": _money(amount * rng.randint(2, 15)) if rng.random() < 0.9 else None,
                "decision_date": "2024-06-12",
                "jobs_forecast": rng.randint(0, 60) if rng.random() < 0.85 else None,
                "jobs_conditional": rng.randint(0, 20) if rng.random() < 0.7 else None,
                "contributions": sorted(rng.sample(OBJECTIVES, rng.randint(0, 3))),
                "value_chain": rng.choice((*VALUE_CHAINS, None)),
                "status": "committed",
                "disbursed_eur": "0.00",
                "disbursements": [],
            }
            n_versions = rng.choice((1, 1, 2, 3, 4))
            times = self.times(n_versions)
            seq = [self.event("grant", "committed", gid, 1, times[0], data)]
            paid = Decimal(0)
            for v in range(2, n_versions + 1):
                data = {**data}
                committed = Decimal(data["amount_eur"])
                roll = rng.random()
                if v == n_versions and roll < 0.12:
                    data["status"] = "cancelled"
                    change = "cancelled"
                elif roll < 0.5 and paid < committed:
                    part = min(committed - paid, (committed * Decimal(rng.randint(10, 60)) / 100).quantize(Decimal("0.01")))
                    paid += part
                    data["disbursements"] = [*data["disbursements"], {"ref": f"DP-{v}", "amount_eur": _money(part), "paid_on": times[v - 1].date().isoformat()}]
                    data["disbursed_eur"] = _money(paid)
                    change = "disbursed"
                else:
                    data["amount_eur"] = _money(max(paid, committed) + Decimal(rng.randint(1, 200) * 1000))
                    data["jobs_forecast"] = rng.randint(0, 80)
                    change = "amended"
                seq.append(self.event("grant", change, gid, v, times[v - 1], data))
            self.sequences.append(seq)

    # -- sites ---------------------------------------------------------------------------------

    def sites(self, territories: list[tuple[str, str]]) -> None:
        rng = self.rng
        for i in range(self.options.sites):
            tid, region = rng.choice(territories)
            commune = self.commune(region)
            sid = f"{commune}_SITE-ECO_{i + 1:05d}"
            data: dict[str, Any] = {
                "id": sid,
                "name": f"Site clés en main {i + 1}",
                "commune_insee": commune,
                "territory_id": tid if rng.random() < 0.95 else None,
                "area_ha": _money(Decimal(rng.randint(500, 20000)) / 100),
                "maturity": rng.choices(MATURITIES, weights=(6, 25, 24))[0],
                "land_recycling": rng.random() < 0.55,
                "labelled_on": "2024-04-15",
                "workshop_held": rng.random() < 0.8,
                "roadmap_delivered": rng.random() < 0.5,
                "owner_kind": rng.choice(BENEFICIARY_KINDS),
                "status": "labelled",
            }
            n_versions = rng.choice((1, 1, 2, 3))
            times = self.times(n_versions)
            seq = [self.event("site", "labelled", sid, 1, times[0], data)]
            for v in range(2, n_versions + 1):
                data = {**data}
                if v == n_versions and rng.random() < 0.1:
                    data["status"] = "withdrawn"
                    change = "withdrawn"
                else:
                    data["workshop_held"] = True
                    data["roadmap_delivered"] = rng.random() < 0.6
                    data["area_ha"] = _money(Decimal(data["area_ha"]) + Decimal(rng.randint(-300, 300)) / 100 + 5)
                    change = "updated"
                seq.append(self.event("site", change, sid, v, times[v - 1], data))
            self.sequences.append(seq)


def _interleave(rng: random.Random, sequences: list[list[dict[str, Any]]], shuffle: bool) -> list[dict[str, Any]]:
    if not shuffle:
        flat = [e for seq in sequences for e in seq]
        return sorted(flat, key=lambda e: (e["time"], e["subject"], e["entityversion"]))
    pending = [list(reversed(seq)) for seq in sequences if seq]
    out: list[dict[str, Any]] = []
    while pending:
        i = rng.randrange(len(pending))
        out.append(pending[i].pop())
        if not pending[i]:
            pending[i] = pending[-1]
            pending.pop()
    return out


def _with_defects(rng: random.Random, events: list[dict[str, Any]], options: StreamOptions) -> list[dict[str, Any]]:
    out = list(events)
    n = len(events)
    if options.duplicate_rate > 0:
        for _ in range(int(n * options.duplicate_rate)):
            j = rng.randrange(len(out))
            out.insert(rng.randint(j + 1, len(out)), dict(out[j]))
    if options.stale_rate > 0:
        last_position: dict[str, int] = {}
        for pos, e in enumerate(out):
            last_position[e["subject"]] = pos
        older = [e for e in out if e["entityversion"] > 1]
        for _ in range(int(n * options.stale_rate)):
            if not older:
                break
            newer = rng.choice(older)
            stale_version = rng.randint(1, newer["entityversion"] - 1)
            stale = next((e for e in out if e["subject"] == newer["subject"] and e["entityversion"] == stale_version and e["type"].split(".")[3] == newer["type"].split(".")[3]), None)
            if stale is None:
                continue
            after = max(pos for pos, e in enumerate(out) if e["subject"] == newer["subject"])
            out.insert(rng.randint(after + 1, len(out)), dict(stale))
    return out


def redeliver(events: list[dict[str, Any]], rng: random.Random, *, duplicate_rate: float = 0.0,
              stale_rate: float = 0.0) -> list[dict[str, Any]]:
    """``events`` as a bus may deliver them: interleaved at random across subjects (each subject's own
    events kept in order), with duplicates and stale redeliveries (the defects of ``StreamOptions``)."""
    sequences: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        sequences.setdefault(e["subject"], []).append(e)
    options = StreamOptions(duplicate_rate=duplicate_rate, stale_rate=stale_rate)
    return _with_defects(rng, _interleave(rng, list(sequences.values()), shuffle=True), options)


def generate_stream(seed: int = 1, options: StreamOptions | None = None, **overrides: Any) -> list[dict[str, Any]]:
    """The CloudEvents (dicts, CONTRACT §5) of a synthetic programme, deterministic for a ``seed``."""
    opts = options or StreamOptions()
    if overrides:
        opts = StreamOptions(**{**opts.__dict__, **overrides})
    base_rng = random.Random(seed)
    builder = _Builder(base_rng, opts)
    placed = builder.territories()
    builder.actions([tid for tid, _ in placed])
    builder.grants(placed)
    builder.sites(placed)
    delivery_rng = random.Random(seed * 7919 + 1)
    events = _interleave(delivery_rng, builder.sequences, opts.shuffle)
    return _with_defects(delivery_rng, events, opts)


def entity_of(event: dict[str, Any]) -> str:
    """``territory`` / ``action`` / ``grant`` / ``site`` from an event's type."""
    return str(event["type"]).split(".")[3]


def final_states(events: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{entity: {subject: event}}``: the latest version of every entity of a stream (whatever its order)."""
    out: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in ENTITY_OF_TYPE_PREFIX}
    for e in events:
        bucket = out.setdefault(entity_of(e), {})
        current = bucket.get(e["subject"])
        if current is None or e["entityversion"] > current["entityversion"]:
            bucket[e["subject"]] = e
    return out


def events_until(events: list[dict[str, Any]], instant: datetime) -> list[dict[str, Any]]:
    """The events whose ``time`` is strictly before ``instant``."""
    bound = instant.astimezone(UTC)
    return [e for e in events if datetime.fromisoformat(e["time"].replace("Z", "+00:00")) < bound]


# --- HTTP payloads (CONTRACT §4) for end-to-end tests and benchmarks ---------------------------
#
# The bodies a client sends to the owning services' write endpoints, deterministic for a seed.
# Each function returns ``{id: body}`` (grants: ``{(operator, operator_ref): body}``); ids carry a
# caller-chosen ``tag`` so that several runs on one platform never collide.


def territory_payloads(rng: random.Random, region_codes: list[str], per_region: int, *, first_seq: int = 1) -> dict[str, dict[str, Any]]:
    """``PUT /v1/territories/{id}`` bodies: ``per_region`` territories in each region of ``region_codes``."""
    out: dict[str, dict[str, Any]] = {}
    for region in region_codes:
        deps = sorted(d for d, (_n, r) in DEPARTEMENTS.items() if r == region)
        for n in range(per_region):
            tid = f"ti-{region}{first_seq + n:02d}"
            epcis = []
            for k in range(rng.randint(1, 3)):
                siren = luhn_complete(f"2{rng.randint(0, 9999999):07d}")
                epcis.append({"siren": siren, "name": f"CC {tid} {k + 1}"})
            in_post = rng.random() < 0.8
            out[tid] = {
                "name": f"Territoire d'industrie {tid}",
                "region_code": region,
                "departement_codes": sorted(rng.sample(deps, min(len(deps), rng.randint(1, 2)))),
                "epcis": epcis,
                "phase": "temps-2",
                "labelled_on": "2023-11-09",
                "project_lead": (
                    {"in_post": in_post, "cofinanced": in_post and rng.random() < 0.7,
                     "name": f"Cheffe de projet {tid}", "email": f"cdp.{tid}@example.org"}
                    if rng.random() < 0.9 else None
                ),
                "launch_copil_held_on": "2024-03-01" if rng.random() < 0.5 else None,
                "status": "active",
            }
    return out


def action_payloads(rng: random.Random, territory_ids: list[str], count: int, *, tag: str) -> dict[str, dict[str, Any]]:
    """``PUT /v1/actions/{id}`` bodies spread over ``territory_ids``."""
    out: dict[str, dict[str, Any]] = {}
    for i in range(count):
        aid = f"{tag}-A{i + 1:04d}"
        out[aid] = {
            "territory_id": territory_ids[i % len(territory_ids)],
            "title": f"Action {aid}",
            "description": "Action du plan de territoire",
            "axis": rng.choice(AXES),
            "themes": rng.sample(THEMES, rng.choice((0, 1, 1, 2, 3))),
            "status": rng.choice(ACTION_STATUSES),
            "planned_start": "2024-01-15",
            "planned_end": None,
            "budget_eur": _money(Decimal(rng.randint(5, 500) * 1000)),
            "partners": rng.sample(["BPI", "ADEME", "BDT"], rng.randint(0, 2)),
        }
    return out


def commune_of_region(rng: random.Random, region: str) -> str:
    """A syntactically valid INSEE commune code in one of ``region``'s départements."""
    dep = rng.choice(sorted(d for d, (_n, r) in DEPARTEMENTS.items() if r == region))
    if len(dep) == 3:
        return dep + f"{rng.randint(1, 60):02d}"
    return dep + f"{rng.randint(1, 600):03d}"


def grant_payloads(
    rng: random.Random, operator: str, territories: dict[str, str], count: int, *, tag: str
) -> dict[tuple[str, str], dict[str, Any]]:
    """``PUT /v1/grants/{operator}/{ref}`` bodies of one operator, on programmes it runs.

    ``territories`` maps territory ids to their region (the commune is drawn in that region)."""
    programmes = [p for p, ops in PROGRAMMES.items() if operator in ops]
    tids = sorted(territories)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for i in range(count):
        ref = f"{tag}-{operator}-{i + 1:04d}"
        tid = tids[i % len(tids)]
        amount = Decimal(rng.randint(20, 3000) * 1000) + Decimal(rng.randint(0, 99)) / 100
        forecast = rng.randint(0, 60) if rng.random() < 0.85 else None
        out[(operator, ref)] = {
            "programme": rng.choice(programmes),
            "beneficiary": {
                "name": f"Bénéficiaire {ref}",
                "siret": luhn_complete(luhn_complete(f"{rng.randint(10000000, 89999999)}") + "0001"),
                "rna": None,
                "kind": rng.choice(BENEFICIARY_KINDS),
            },
            "territory_id": tid,
            "commune_insee": commune_of_region(rng, territories[tid]),
            "action_id": None,
            "object": f"Projet industriel {ref}",
            "amount_eur": _money(amount),
            "investment_eur": _money(amount * rng.randint(2, 10)) if rng.random() < 0.9 else None,
            "decision_date": "2024-06-12",
            "jobs_forecast": forecast,
            "jobs_conditional": None if forecast is None else rng.randint(0, forecast),
            "contributions": [o for o in OBJECTIVES if rng.random() < 0.3],
            "value_chain": rng.choice((*VALUE_CHAINS, None)),
            "status": "committed",
        }
    return out


SCDL_COLUMNS = (
    "nomAttribuant", "idAttribuant", "dateConvention", "referenceDecision", "nomBeneficiaire", "idBeneficiaire",
    "rnaBeneficiaire", "objet", "montant", "nature", "conditionsVersement", "datesPeriodeVersement", "idRAE",
    "notificationUE", "pourcentageSubvention", "dispositifAide", "operator", "operator_ref", "programme",
    "territory_id", "commune_insee", "action_id", "investment_eur", "jobs_forecast", "jobs_conditional",
    "contributions", "value_chain", "beneficiary_kind", "status",
)


def grants_scdl_csv(grants: dict[tuple[str, str], dict[str, Any]], *, attribuant: str, attribuant_siret: str) -> str:
    """A ``text/csv`` batch (SCDL « subventions » 2.1.1 columns plus the platform's) of ``grants``."""

    def cell(value: Any) -> str:
        return "" if value is None else str(value)

    lines = [";".join(SCDL_COLUMNS)]
    for (operator, ref), g in grants.items():
        b = g["beneficiary"]
        row = {
            "nomAttribuant": attribuant, "idAttribuant": attribuant_siret, "dateConvention": g["decision_date"],
            "referenceDecision": ref, "nomBeneficiaire": b["name"], "idBeneficiaire": b["siret"],
            "rnaBeneficiaire": b["rna"], "objet": g["object"], "montant": g["amount_eur"], "nature": "aide en numéraire",
            "conditionsVersement": "echelonne", "datesPeriodeVersement": "", "idRAE": "", "notificationUE": "non",
            "pourcentageSubvention": "", "dispositifAide": g["programme"], "operator": operator, "operator_ref": ref,
            "programme": g["programme"], "territory_id": g["territory_id"], "commune_insee": g["commune_insee"],
            "action_id": g["action_id"], "investment_eur": g["investment_eur"], "jobs_forecast": g["jobs_forecast"],
            "jobs_conditional": g["jobs_conditional"], "contributions": "|".join(g["contributions"]),
            "value_chain": g["value_chain"], "beneficiary_kind": b["kind"], "status": g["status"],
        }
        lines.append(";".join(cell(row[c]).replace(";", ",") for c in SCDL_COLUMNS))
    return "\n".join(lines) + "\n"


def site_payloads(rng: random.Random, territories: dict[str, str], count: int, *, tag: str) -> dict[str, dict[str, Any]]:
    """``PUT /v1/sites/{id}`` bodies, each in the region of its territory."""
    tids = sorted(territories)
    out: dict[str, dict[str, Any]] = {}
    for i in range(count):
        tid = tids[i % len(tids)]
        commune = commune_of_region(rng, territories[tid])
        sid = f"{commune}_SITE-{tag}_{i + 1:05d}"
        out[sid] = {
            "name": f"Site clés en main {tag} {i + 1}",
            "commune_insee": commune,
            "territory_id": tid,
            "area_ha": _money(Decimal(rng.randint(500, 20000)) / 100),
            "maturity": rng.choice(MATURITIES),
            "land_recycling": rng.random() < 0.5,
            "labelled_on": "2024-04-15",
            "workshop_held": rng.random() < 0.8,
            "roadmap_delivered": rng.random() < 0.5,
            "owner_kind": rng.choice(BENEFICIARY_KINDS),
            "status": "labelled",
        }
    return out


# --- recorded streams (JSON lines, CONTRACT §5) --------------------------------------------------


class StreamError(ValueError):
    """A line of a recorded stream is not a CloudEvent of a known type."""


def stream_messages(lines: Iterable[str]) -> list[OutgoingMessage]:
    """The bus messages of a recorded stream: each line routed to its topic by ``type``, keyed by
    ``subject``, its text published as it is (blank lines skipped)."""
    messages = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
            topic = topic_for_type(doc["type"])
            key = doc["subject"]
        except (ValueError, KeyError, TypeError) as exc:
            raise StreamError(f"line {n}: not a CloudEvent of a known type ({exc})") from exc
        if topic is None:
            raise StreamError(f"line {n}: unknown event type {doc['type']!r}")
        messages.append(OutgoingMessage(topic, str(key), line.encode(), (("content-type", CONTENT_TYPE.encode()),)))
    return messages


async def publish_stream(
    settings: PlatformSettings, messages: list[OutgoingMessage], client_id: str = "ti-replay",
    progress: Callable[[int], None] | None = None,
) -> None:
    """Publish ``messages`` in order on the bus of ``settings`` (Kafka, or the local log of the embedded
    mode); ``progress`` is told how many are published after each thousand."""
    publisher = make_publisher(settings, client_id)
    await publisher.start()
    try:
        for i in range(0, len(messages), 1000):
            await publisher.publish(messages[i : i + 1000])
            if progress is not None:
                progress(min(i + 1000, len(messages)))
    finally:
        await publisher.stop()


def to_json_lines(events: Iterable[Mapping[str, Any]]) -> str:
    """A recorded stream's text: one compact JSON object per line."""
    return "".join(json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n" for e in events)
