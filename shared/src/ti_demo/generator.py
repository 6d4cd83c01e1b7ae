"""The demo programme: a seeded, synthetic set of writes whose national indicators reproduce BILAN.md.

Everything here is pure: the same seed gives the same payloads, byte for byte. The loader sends them
through the public API (``ti_demo.loader``).
"""

from __future__ import annotations

import csv
import io
import json
import random
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from ti_shared.geo import DEPARTEMENTS, REGIONS
from ti_shared.types import format_decimal, luhn_complete

from ti_demo import figures as F
from ti_demo.places import COMPANY_FORMS, COMPANY_WORDS, FIRST_NAMES, LAST_NAMES, PLACES

#: number of territories per piloting region (183 in all)
TERRITORIES_PER_REGION: dict[str, int] = {
    "84": 24, "75": 22, "76": 21, "44": 19, "32": 14, "27": 14, "28": 12, "52": 12, "53": 10,
    "24": 10, "93": 10, "11": 6, "94": 2, "01": 2, "04": 2, "02": 1, "03": 1, "06": 1,
}
#: which of the three names of PLACES a département's first territory takes
_FIRST_NAME_PATTERN = {"24": 2, "56": 1}

TERRITORIES_REGISTERED_AT = datetime(2023, 11, 9, 10, 0, tzinfo=UTC)
ACTIONS_LAUNCH_AT = datetime(2023, 11, 15, 9, 0, tzinfo=UTC)
SITES_LABELLED_AT = datetime(2024, 4, 15, 10, 0, tzinfo=UTC)
LAST_INSTANT = datetime(2024, 11, 30, 18, 0, tzinfo=UTC)

ADMIN_SUB = "ti-demo-loader"


@dataclass(frozen=True)
class Write:
    """One request of the demo load, with the instant it takes effect (``TI-Effective-At``)."""

    service: str
    method: str
    path: str
    body: dict[str, Any]
    effective_at: datetime
    entity: str
    #: how the body travels: JSON, or the CSV of a plan import (``body["actions"]``), of a CNIG
    #: « sites économiques » inventory (``body["sites"]``) or of an SCDL « subventions » file (``body["items"]``)
    media_type: str = "application/json"

    def content(self) -> bytes:
        if self.media_type == "text/csv" and "sites" in self.body:
            return cnig_csv(self.body["sites"]).encode()
        if self.media_type == "text/csv" and "items" in self.body:
            return scdl_csv(self.body["items"]).encode()
        if self.media_type == "text/csv":
            return plan_csv(self.body["actions"]).encode()
        return json.dumps(self.body, ensure_ascii=False, separators=(",", ":")).encode()

    def as_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "method": self.method,
            "path": self.path,
            "effective_at": instant(self.effective_at),
            "media_type": self.media_type,
            "body": self.body,
        }


@dataclass
class DemoProgramme:
    """The writes of the demo, grouped by the order they are loaded in."""

    seed: int
    territories: list[Write] = field(default_factory=list)
    actions: list[Write] = field(default_factory=list)
    grant_batches: list[Write] = field(default_factory=list)
    sites: list[Write] = field(default_factory=list)

    @property
    def grants(self) -> list[dict[str, Any]]:
        return [item for batch in self.grant_batches for item in batch.body["items"]]

    def all_writes(self) -> list[Write]:
        return [*self.territories, *self.actions, *self.grant_batches, *self.sites]

    def site_files(self) -> list[Write]:
        """The sites as CNIG « sites économiques » inventories, one file per instant: what the load sends."""
        by_instant: dict[datetime, list[Write]] = defaultdict(list)
        for write in self.sites:
            by_instant[write.effective_at].append(write)
        return [
            Write(
                "site-catalog", "POST", "/v1/sites/imports?mode=atomic",
                {"sites": [{"id": w.entity, **w.body} for w in writes]}, at, f"sites@{instant(at)}", media_type="text/csv",
            )
            for at, writes in sorted(by_instant.items())
        ]


def instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "-".join("".join(c if c.isalnum() else " " for c in ascii_text.lower()).split())


def _de(name: str) -> str:
    """« de Lorient », « d'Alès », « du Havre »."""
    if name.startswith("Le "):
        return "du " + name[3:]
    if name.startswith("Les "):
        return "des " + name[4:]
    if name[0] in "AEIOUYÉÈÊÎÔ":
        return "d'" + name
    return "de " + name


def allocate(total: int, weights: Sequence[float], minimum: int = 0) -> list[int]:
    """Split ``total`` into integers proportional to ``weights``, each at least ``minimum``, summing exactly."""
    n = len(weights)
    rest = total - minimum * n
    if rest < 0:
        raise ValueError("total too small for the minimum")
    weight_sum = sum(weights)
    raw = [rest * w / weight_sum for w in weights]
    parts = [int(r) for r in raw]
    missing = rest - sum(parts)
    by_remainder = sorted(range(n), key=lambda i: (-(raw[i] - parts[i]), i))
    for i in by_remainder[:missing]:
        parts[i] += 1
    return [minimum + p for p in parts]


def _random_instant(rng: random.Random, first: date, last: date) -> datetime:
    days = (last - first).days
    day = first + timedelta(days=rng.randint(0, days))
    while day.weekday() >= 5:
        day -= timedelta(days=1 if day > first else -1)
    return datetime(day.year, day.month, day.day, rng.randint(7, 16), rng.choice((0, 15, 30, 45)), tzinfo=UTC)


def _commune(rng: random.Random, departement: str) -> str:
    if departement == "75":
        return "75056"
    if len(departement) == 3:
        return departement + f"{rng.randint(1, 17):02d}"
    high = 78 if departement in ("92", "93", "94") else 99
    return departement + f"{rng.randint(1, high):03d}"


class _Identifiers:
    """Unique Luhn-valid SIRENs and SIRETs."""

    def __init__(self) -> None:
        self._epci = 0
        self._company = 0

    def epci_siren(self) -> str:
        self._epci += 1
        return luhn_complete(f"2000{(self._epci * 7919 + 1234) % 10000:04d}")

    def company_siren(self, rng: random.Random) -> str:
        self._company += 1
        head = rng.choice("3457789")
        siren = luhn_complete(f"{head}{(self._company * 104729 + 5003) % 10000000:07d}")
        if siren.startswith("356"):
            return self.company_siren(rng)
        return siren

    @staticmethod
    def siret(siren: str, establishment: int = 1) -> str:
        return luhn_complete(f"{siren}{establishment:04d}")


@dataclass
class _Territory:
    id: str
    name: str
    region_code: str
    departement: str
    departements: list[str]
    epcis: list[dict[str, str]]
    body: dict[str, Any] = field(default_factory=dict)


# --- territories ---------------------------------------------------------------------------------


def _territories(rng: random.Random, ids: _Identifiers) -> tuple[list[_Territory], list[Write]]:
    territories: list[_Territory] = []
    per_departement: Counter[str] = Counter()
    for region_code in REGIONS:
        deps = sorted(code for code, (_, region) in DEPARTEMENTS.items() if region == region_code)
        rng.shuffle(deps)
        for seq in range(1, TERRITORIES_PER_REGION[region_code] + 1):
            dep = deps[(seq - 1) % len(deps)]
            k = per_departement[dep]
            per_departement[dep] += 1
            town1, town2, valley = PLACES[dep]
            pattern = (k + _FIRST_NAME_PATTERN.get(dep, 0)) % 3
            name = ("Bassin " + _de(town1), "Pays " + _de(town2), valley)[pattern]
            departements = [dep]
            if len(deps) > 1 and rng.random() < 0.2:
                departements.append(deps[seq % len(deps)])
            territories.append(_Territory(f"ti-{region_code}{seq:02d}", name, region_code, dep, sorted(departements), []))
    assert len(territories) == F.TERRITORIES
    assert len({t.name for t in territories}) == F.TERRITORIES

    order = list(range(len(territories)))
    rng.shuffle(order)
    four = set(order[: F.EPCIS - 3 * F.TERRITORIES])
    in_post = order[: F.PROJECT_LEADS_IN_POST]
    cofinanced = set(in_post[: F.PROJECT_LEADS_COFINANCED])
    copil = set(rng.sample(in_post, F.LAUNCH_COPIL_HELD))
    in_post_set = set(in_post)

    registrations: list[Write] = []
    updates: list[Write] = []
    for index, t in enumerate(territories):
        base = _place_of(t.name)
        of_place = _de(base) if base != t.name else t.name
        forms = ("CA", "CC", "CC", "CC")
        suffixes = ("", " Nord", " Sud", " Est")
        for e in range(4 if index in four else 3):
            t.epcis.append({"siren": ids.epci_siren(), "name": f"{forms[e]} {of_place}{suffixes[e]}"})
        lead: dict[str, Any] | None = None
        if index in in_post_set:
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            lead = {
                "in_post": True,
                "cofinanced": index in cofinanced,
                "name": f"{first} {last}",
                "email": f"{_slug(first)}.{_slug(last)}@{_slug(base)}-industrie.fr",
            }
        body: dict[str, Any] = {
            "name": t.name,
            "region_code": t.region_code,
            "departement_codes": t.departements,
            "epcis": t.epcis,
            "phase": "temps-2",
            "labelled_on": F.TERRITORIES_LABELLED_ON,
            "project_lead": lead,
            "launch_copil_held_on": None,
            "status": "active",
        }
        t.body = body
        path = f"/v1/territories/{t.id}"
        registrations.append(Write("territory-registry", "PUT", path, body, TERRITORIES_REGISTERED_AT, t.id))
        if index in copil:
            held = _random_instant(rng, date(2023, 12, 4), date(2024, 10, 18))
            updated = {**body, "launch_copil_held_on": held.date().isoformat()}
            t.body = updated
            updates.append(Write("territory-registry", "PUT", path, updated, held.replace(hour=17, minute=0), t.id))
    return territories, registrations + updates


# --- actions -------------------------------------------------------------------------------------

_TITLES: dict[str, tuple[str, ...]] = {
    "valorisation_industrie": ("Semaine de l'industrie : visites d'entreprises", "Campagne « L'industrie recrute »", "Portes ouvertes des usines du territoire"),
    "nouvelles_formations": ("Ouverture d'une formation en maintenance industrielle", "Campus des métiers : nouvelle licence pro", "Formation de soudeurs en alternance"),
    "rh_marque_employeur": ("Marque employeur partagée des industriels", "Groupement d'employeurs industriels", "Plateforme d'accueil des nouveaux salariés"),
    "besoin_formation": ("Diagnostic des besoins en compétences", "Enquête emplois-compétences auprès des PMI", "GPEC territoriale de l'industrie"),
    "aide_installation": ("Aide au logement des salariés de l'industrie", "Guichet d'accueil des entreprises", "Accompagnement des conjoints de salariés"),
    "transition_energetique": ("Réseau de chaleur fatale industrielle", "Centrale photovoltaïque en zone d'activités", "Étude hydrogène vert pour les industriels"),
    "ecologie_industrielle_territoriale": ("Démarche d'écologie industrielle et territoriale", "Mutualisation des flux de déchets industriels", "Boucle locale de matières recyclées"),
    "gestion_eau": ("Réutilisation des eaux usées industrielles", "Plan de sobriété hydrique des industriels", "Diagnostic des prélèvements d'eau"),
    "infrastructures_numeriques": ("Raccordement très haut débit des zones d'activités", "Réseau 5G industrielle", "Centre de données de proximité"),
    "usages_numeriques": ("Diagnostic industrie du futur des PMI", "Accompagnement à la cybersécurité des PME", "Jumeau numérique de la zone industrielle"),
    "tiers_lieux": ("Création d'un tiers-lieu industriel", "Fab lab au service des PME", "Atelier partagé de prototypage"),
    "ecosysteme_innovation_recherche": ("Plateforme technologique mutualisée", "Partenariat université-industrie", "Appel à projets innovation des PMI"),
    "sites_cles_en_main": ("Préparation d'un site clés en main", "Procédures anticipées sur la zone d'activités", "Aménagement d'un parc d'activités"),
    "requalification_friche": ("Requalification d'une friche industrielle", "Dépollution d'un ancien site métallurgique", "Reconversion d'une friche textile"),
    "optimisation_densification_fonciere": ("Densification des zones d'activités", "Observatoire du foncier économique", "Stratégie foncière intercommunale"),
}
_TITLES_WITHOUT_THEME = ("Animation du réseau des industriels", "Club d'entreprises du territoire", "Mission d'ingénierie du chef de projet")
_PARTNERS = ("ADEME", "BPI", "Banque des Territoires", "Région", "CCI", "CMA", "France Travail", "OPCO 2i", "Université")

_LAUNCH_PATHS: dict[str, tuple[tuple[float, tuple[str, ...]], ...]] = {
    "realise": ((0.6, ("en_cours", "realise")), (0.4, ("etude_prealable", "en_cours", "realise"))),
    "en_cours": (
        (0.35, ("en_cours",)),
        (0.3, ("etude_prealable", "en_cours")),
        (0.2, ("amont", "en_cours")),
        (0.15, ("amont", "etude_prealable", "en_cours")),
    ),
    "etude_prealable": ((0.4, ("etude_prealable",)), (0.45, ("amont", "etude_prealable")), (0.15, ("non_renseigne", "etude_prealable"))),
    "amont": ((0.7, ("amont",)), (0.3, ("non_renseigne", "amont"))),
    "non_renseigne": ((1.0, ("non_renseigne",)),),
    "en_pause": ((0.6, ("en_cours", "en_pause")), (0.4, ("etude_prealable", "en_pause"))),
    "abandonne": ((0.5, ("amont", "abandonne")), (0.5, ("etude_prealable", "abandonne"))),
}
_NEW_PATHS: dict[str, tuple[tuple[float, tuple[str, ...]], ...]] = {
    "realise": ((1.0, ("en_cours", "realise")),),
    "en_cours": ((0.6, ("en_cours",)), (0.4, ("etude_prealable", "en_cours"))),
    "etude_prealable": ((0.6, ("etude_prealable",)), (0.4, ("amont", "etude_prealable"))),
    "amont": ((1.0, ("amont",)),),
    "non_renseigne": ((1.0, ("non_renseigne",)),),
    "en_pause": ((1.0, ("en_cours", "en_pause")),),
    "abandonne": ((1.0, ("amont", "abandonne")),),
}
_CAMPAIGNS = ("lancement-2023-11", "semestre-2024-06", "semestre-2024-11")
_AXIS_LABELS = {
    "competences_attractivite": "compétences et attractivité",
    "transition_ecologique": "transition écologique",
    "foncier": "foncier",
    "innovation": "innovation",
    "autre": "hors des quatre axes",
}


def _pick_path(rng: random.Random, options: tuple[tuple[float, tuple[str, ...]], ...]) -> tuple[str, ...]:
    r = rng.random()
    for weight, path in options:
        if r < weight:
            return path
        r -= weight
    return options[-1][1]


PLAN_COLUMNS = (
    "action_id", "title", "description", "axis", "themes", "status",
    "planned_start", "planned_end", "budget_eur", "partners",
)


def plan_csv(rows: Sequence[dict[str, Any]]) -> str:
    """A territory's plan as the action-tracker's plan import reads it (a GRIST-like CSV export)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerow(PLAN_COLUMNS)
    for row in rows:
        cells = []
        for column in PLAN_COLUMNS:
            value = row.get(column)
            if isinstance(value, list):
                value = "|".join(value)
            cells.append("" if value is None else str(value))
        writer.writerow(cells)
    return out.getvalue()


#: a CNIG « sites économiques » 1.0.1 inventory's columns the site catalogue reads, then the programme's own
CNIG_SITE_COLUMNS = (
    "site_id", "site_nom", "site_type", "site_surf_brute", "site_evol_urba", "site_comm_insee", "site_moa_type",
    "site_maturite", "site_date_label", "site_atelier", "site_feuille_route", "territory_id",
)
#: owner kind → a value of the CNIG site_moa_type enumeration that the catalogue reads back as it
_MOA_TYPE = {"collectivite": "epci", "entreprise": "privé", "etablissement_public": "chambre de commerce et industrie"}


def cnig_csv(sites: Sequence[dict[str, Any]]) -> str:
    """Sites as a collectivité's CNIG inventory: ``;``-separated, French decimals and dates, the standard's
    values for the urbanisation and the owner, the programme's facts in its own columns."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(CNIG_SITE_COLUMNS)
    for site in sites:
        day = date.fromisoformat(site["labelled_on"])
        cnig = site["cnig"]
        writer.writerow([
            site["id"], site["name"], cnig["site_type"], site["area_ha"].replace(".", ","),
            cnig["site_evol_urba"], site["commune_insee"], cnig["site_moa_type"], site["maturity"], f"{day:%d/%m/%Y}", "oui" if site["workshop_held"] else "non",
            "oui" if site["roadmap_delivered"] else "non", site["territory_id"] or "",
        ])
    return out.getvalue()


def _status_by_campaign(rng: random.Random, final: str, joins: int) -> list[str | None]:
    """The action's status at each of the three campaigns (None before it appears in the plan)."""
    if joins == 0:
        path = _pick_path(rng, _LAUNCH_PATHS[final])
        if len(path) == 1:
            return [path[0]] * 3
        if len(path) == 2:
            return [path[0], path[1], path[1]] if rng.random() < 0.5 else [path[0], path[0], path[1]]
        return list(path)
    if joins == 1:
        path = _pick_path(rng, _NEW_PATHS[final])
        return [None, path[0], path[-1]]
    return [None, None, final]


def _actions(rng: random.Random, territories: list[_Territory]) -> list[Write]:
    """Three plan campaigns per territory: the launch (Nov. 2023) and the two half-yearly updates of 2024."""
    axes = [axis for axis, n in F.AXIS_COUNTS.items() for _ in range(n)]
    assert len(axes) == F.ACTIONS
    themes: list[list[str]] = [[] for _ in axes]
    for axis in F.AXIS_COUNTS:
        members = [i for i, a in enumerate(axes) if a == axis]
        rng.shuffle(members)
        pointer = 0
        for theme, count in F.THEME_COUNTS.items():
            if F.THEME_AXIS[theme] != axis:
                continue
            for k in range(count):
                themes[members[(pointer + k) % len(members)]].append(theme)
            pointer = (pointer + count) % len(members)
    statuses = [status for status, n in F.STATUS_COUNTS.items() for _ in range(n)]
    rng.shuffle(statuses)
    new = rng.sample(range(F.ACTIONS), F.ACTIONS - F.ACTIONS_AT_LAUNCH)
    joins = [0] * F.ACTIONS
    for k, i in enumerate(new):
        joins[i] = 1 if k < len(new) * 6 // 10 else 2

    per_territory = allocate(F.ACTIONS, [rng.uniform(0.5, 1.6) for _ in territories], minimum=4)
    owners = [t for t, n in zip(territories, per_territory, strict=True) for _ in range(n)]
    rng.shuffle(owners)
    campaigns = {
        t.id: [
            ACTIONS_LAUNCH_AT,
            _random_instant(rng, date(2024, 5, 13), date(2024, 6, 28)),
            _random_instant(rng, date(2024, 11, 4), date(2024, 11, 29)),
        ]
        for t in territories
    }
    sequence: Counter[str] = Counter()
    plans: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for i in range(F.ACTIONS):
        territory = owners[i]
        sequence[territory.id] += 1
        action_themes = sorted(themes[i], key=list(F.THEME_COUNTS).index)
        title = rng.choice(_TITLES[action_themes[0]] if action_themes else _TITLES_WITHOUT_THEME)
        appears = campaigns[territory.id][joins[i]].date()
        planned_start = (appears + timedelta(days=rng.randint(-120, 240))).replace(day=1)
        planned_end = planned_start + timedelta(days=30 * rng.randint(6, 36)) if rng.random() < 0.7 else None
        fields: dict[str, Any] = {
            "action_id": f"{territory.id}-A{sequence[territory.id]:03d}",
            "title": f"{title} ({territory.name})",
            "description": f"Action du plan de territoire « {territory.name} », axe {_AXIS_LABELS[axes[i]]}.",
            "axis": axes[i],
            "themes": action_themes,
            "status": None,
            "planned_start": planned_start.isoformat(),
            "planned_end": planned_end.isoformat() if planned_end else None,
            "budget_eur": format_decimal(Decimal(rng.randint(2, 400) * 5000)),
            "partners": sorted(rng.sample(_PARTNERS, rng.randint(0, 3))),
        }
        for campaign, status in enumerate(_status_by_campaign(rng, statuses[i], joins[i])):
            if status is not None:
                plans[(territory.id, campaign)].append({**fields, "status": status})

    writes = []
    for (territory_id, campaign), rows in sorted(plans.items()):
        body = {"territory_id": territory_id, "campaign": _CAMPAIGNS[campaign], "actions": rows}
        path = f"/v1/actions/plan-imports?territory_id={territory_id}&mode=atomic"
        writes.append(
            Write("action-tracker", "POST", path, body, campaigns[territory_id][campaign], territory_id, media_type="text/csv")
        )
    return writes


# --- grants --------------------------------------------------------------------------------------

_FV_OBJECTS: dict[str, tuple[str, ...]] = {
    "economie_circulaire": ("Recyclage de métaux stratégiques", "Valorisation des chutes de production", "Ligne de recyclage des plastiques", "Réemploi des emballages industriels"),
    "relocalisation": ("Relocalisation d'une ligne d'ameublement", "Relocalisation de la production de textiles", "Nouvelle unité d'électroménager"),
    "bioeconomie": ("Matériaux biosourcés pour la construction", "Unité de bioraffinerie", "Production de fibres végétales"),
    "mobilites_durables": ("Composants pour véhicules électriques", "Atelier de rétrofit de véhicules"),
    "agroalimentaire": ("Décarbonation d'une conserverie", "Sobriété énergétique d'une laiterie"),
    "autre": ("Efficacité énergétique d'un site de production", "Électrification des procédés"),
}
_OTHER_CONTRIBUTIONS = (("climate_adaptation", 0.2), ("water", 0.12), ("pollution", 0.18), ("biodiversity", 0.08))


def _company(rng: random.Random, ids: _Identifiers, place: str) -> dict[str, Any]:
    siren = ids.company_siren(rng)
    name = f"{rng.choice(COMPANY_WORDS)} {place.split('-')[0].split(' ')[0]} {rng.choice(COMPANY_FORMS)}".upper()
    return {"name": name, "siret": ids.siret(siren, rng.randint(1, 40)), "rna": None, "kind": "entreprise"}


def _collectivite(territory: _Territory) -> dict[str, Any]:
    epci = territory.epcis[0]
    return {"name": epci["name"], "siret": _Identifiers.siret(epci["siren"]), "rna": None, "kind": "collectivite"}


def _euros(value: int) -> str:
    return format_decimal(Decimal(value))


def _fonds_vert(rng: random.Random, ids: _Identifiers, territories: list[_Territory]) -> list[dict[str, Any]]:
    order = list(territories)
    rng.shuffle(order)
    chosen: list[_Territory] = []
    seen: set[str] = set()
    for t in order:
        if t.departement not in seen and len(seen) < F.FONDS_VERT_DEPARTEMENTS:
            seen.add(t.departement)
            chosen.append(t)
    extra = [t for t in order if t.departement in seen and t not in chosen]
    chosen += extra[: F.FONDS_VERT_TERRITORIES - len(chosen)]
    assert len(chosen) == F.FONDS_VERT_TERRITORIES
    n = F.FONDS_VERT_GRANTS
    owners = chosen + [rng.choice(chosen) for _ in range(n - len(chosen))]
    rng.shuffle(owners)

    weights = [rng.lognormvariate(0, 0.8) for _ in range(n)]
    amounts = allocate(int(F.FONDS_VERT_AMOUNT) // 100, weights, minimum=500)
    leverage = [w * rng.uniform(0.6, 1.6) for w in weights]
    extra_investment = allocate(int(F.FONDS_VERT_INVESTMENT - F.FONDS_VERT_AMOUNT) // 100, leverage, minimum=1000)
    jobs = allocate(F.FONDS_VERT_JOBS, weights, minimum=2)
    odd = [i for i in range(n) if jobs[i] % 2]
    conditional = [j // 2 for j in jobs]
    for i in odd[: (2 * F.FONDS_VERT_JOBS_CONDITIONAL - sum(2 * c for c in conditional)) // 2]:
        conditional[i] += 1

    mitigation = set(rng.sample(range(n), F.FONDS_VERT_CONTRIBUTION_COUNTS["climate_mitigation"]))
    circular = set(rng.sample(range(n), F.FONDS_VERT_CONTRIBUTION_COUNTS["circular_economy"]))
    chains = [c for c, k in F.FONDS_VERT_VALUE_CHAIN_COUNTS.items() for _ in range(k)]
    rng.shuffle(chains)

    grants: list[dict[str, Any]] = []
    for i, territory in enumerate(owners):
        contributions = [c for c, chance in _OTHER_CONTRIBUTIONS if rng.random() < chance]
        if i in mitigation:
            contributions.append("climate_mitigation")
        if i in circular:
            contributions.append("circular_economy")
        if not contributions:
            contributions.append("pollution")
        decided = _random_instant(rng, date(2024, 3, 11), date(2024, 10, 31)).date()
        grants.append(
            {
                "operator": "ADEME",
                "operator_ref": f"FV-2024-{i + 1:04d}",
                "programme": F.FONDS_VERT,
                "beneficiary": _company(rng, ids, territory.name.split(" ")[-1]),
                "territory_id": territory.id,
                "commune_insee": _commune(rng, territory.departement),
                "action_id": None,
                "object": rng.choice(_FV_OBJECTS[chains[i]]),
                "amount_eur": _euros(amounts[i] * 100),
                "investment_eur": _euros((amounts[i] + extra_investment[i]) * 100),
                "decision_date": decided.isoformat(),
                "jobs_forecast": jobs[i],
                "jobs_conditional": conditional[i],
                "contributions": sorted(contributions),
                "value_chain": chains[i],
                "status": "committed",
            }
        )
    return grants


def _find(territories: list[_Territory], name: str) -> _Territory:
    return next(t for t in territories if t.name == name)


def _rebond(rng: random.Random, ids: _Identifiers, territories: list[_Territory]) -> list[dict[str, Any]]:
    lorient = _find(territories, "Pays de Lorient")
    perigord = _find(territories, "Périgord Noir")
    others = [t for t in territories if t not in (lorient, perigord)]
    chosen = [lorient, perigord, *rng.sample(others, F.REBOND_TERRITORIES - 2)]
    plan: list[tuple[_Territory, int, int | None]] = []  # territory, grant count, investment of the lot
    rest_amount = int(F.REBOND_AMOUNT) - 1_500_000 - 2_000_000
    groups = [(lorient, 6, 1_500_000, 4_800_000), (perigord, 5, 2_000_000, 9_600_000)]
    others_n = len(chosen) - 2
    other_amounts = allocate(rest_amount // 1000, [rng.uniform(0.5, 1.5) for _ in range(others_n)], minimum=300)
    for t, lot in zip(chosen[2:], other_amounts, strict=True):
        groups.append((t, 2, lot * 1000, lot * 1000 * rng.randint(3, 8)))
    grants: list[dict[str, Any]] = []
    number = 0
    for territory, count, amount, investment in groups:
        plan.append((territory, count, investment))
        weights = [rng.uniform(0.6, 1.4) for _ in range(count)]
        amounts = allocate(amount // 100, weights, minimum=100)
        investments = allocate(investment // 100, weights, minimum=0)
        for k in range(count):
            number += 1
            operator = "BPI" if number % 2 else "BDT"
            decided = _random_instant(rng, date(2024, 2, 5), date(2024, 11, 15)).date()
            jobs = rng.randint(4, 60)
            grants.append(
                {
                    "operator": operator,
                    "operator_ref": f"RI-2024-{number:03d}",
                    "programme": F.REBOND,
                    "beneficiary": _company(rng, ids, territory.name.split(" ")[-1]),
                    "territory_id": territory.id,
                    "commune_insee": _commune(rng, territory.departement),
                    "action_id": None,
                    "object": rng.choice(("Extension d'un atelier de production", "Reprise d'un site industriel", "Modernisation d'une ligne de production", "Implantation d'une nouvelle usine")),
                    "amount_eur": _euros(amounts[k] * 100),
                    "investment_eur": _euros(max(investments[k], amounts[k]) * 100),
                    "decision_date": decided.isoformat(),
                    "jobs_forecast": jobs,
                    "jobs_conditional": jobs // 3,
                    "contributions": [],
                    "value_chain": rng.choice(("relocalisation", "autre", "economie_circulaire")),
                    "status": "committed",
                }
            )
    missions = allocate(int(F.INGENIERIE_REBOND_AMOUNT) // 100, [1.0] * F.REBOND_MISSIONS, minimum=0)
    for m, territory in enumerate(chosen[: F.REBOND_MISSIONS]):
        decided = _random_instant(rng, date(2024, 1, 15), date(2024, 6, 28)).date()
        grants.append(
            {
                "operator": "BDT",
                "operator_ref": f"IR-2024-{m + 1:02d}",
                "programme": F.INGENIERIE_REBOND,
                "beneficiary": _collectivite(territory),
                "territory_id": territory.id,
                "commune_insee": _commune(rng, territory.departement),
                "action_id": None,
                "object": f"Mission Rebond industriel : sourcing des projets ({territory.name})",
                "amount_eur": _euros(missions[m] * 100),
                "investment_eur": None,
                "decision_date": decided.isoformat(),
                "jobs_forecast": None,
                "jobs_conditional": None,
                "contributions": [],
                "value_chain": None,
                "status": "committed",
            }
        )
    return grants


def _anct_grant(ref: str, programme: str, territory: _Territory, commune: str, obj: str, cents: int, decided: date) -> dict[str, Any]:
    """A grant of ANCT to a territory's intercommunality (no investment, jobs or contributions)."""
    return {
        "operator": "ANCT",
        "operator_ref": ref,
        "programme": programme,
        "beneficiary": _collectivite(territory),
        "territory_id": territory.id,
        "commune_insee": commune,
        "action_id": None,
        "object": obj,
        "amount_eur": _euros(cents),
        "investment_eur": None,
        "decision_date": decided.isoformat(),
        "jobs_forecast": None,
        "jobs_conditional": None,
        "contributions": [],
        "value_chain": None,
        "status": "committed",
    }


def _ingenierie_anct(rng: random.Random, territories: list[_Territory]) -> list[dict[str, Any]]:
    chosen = rng.sample(territories, 40)
    amounts = allocate(int(F.INGENIERIE_ANCT_AMOUNT) // 100, [rng.uniform(0.5, 1.5) for _ in chosen], minimum=100)
    grants: list[dict[str, Any]] = []
    for i, territory in enumerate(chosen):
        decided = _random_instant(rng, date(2024, 1, 15), date(2024, 11, 22)).date()
        commune = _commune(rng, territory.departement)
        obj = rng.choice(("Étude de stratégie foncière économique", "Ingénierie de projet industriel", "Étude de requalification de friche"))
        grants.append(_anct_grant(f"ING-2024-{i + 1:03d}", F.INGENIERIE_ANCT, territory, commune, obj, amounts[i] * 100, decided))
    return grants


def _cofinancement(seed: int, territories: list[_Territory]) -> list[dict[str, Any]]:
    """The State's share of each co-financed project lead's post, for 2023 and for 2024 (drawn from a
    generator of its own, so the rest of the programme is the same with or without it)."""
    rng = random.Random(f"{seed}-cofinancement")
    leads = [t for t in territories if (t.body.get("project_lead") or {}).get("cofinanced")]
    years = (2023, 2024)
    weights = [rng.uniform(0.8, 1.2) for _ in range(len(leads) * len(years))]
    amounts = allocate(int(F.COFINANCEMENT_AMOUNT) // 100, weights, minimum=100)
    grants: list[dict[str, Any]] = []
    for i, (year, territory) in enumerate((y, t) for y in years for t in leads):
        # the temps II began with the labelling of 9 November 2023: 2023's share is decided after it
        first, last = (date(2023, 11, 16), date(2023, 12, 15)) if year == 2023 else (date(2024, 1, 15), date(2024, 11, 22))
        decided = _random_instant(rng, first, last).date()
        obj = f"Cofinancement du poste de chef de projet Territoires d'industrie ({year})"
        grants.append(
            _anct_grant(f"CDP-{year}-{territory.id}", F.COFINANCEMENT, territory, _commune(rng, territory.departement), obj, amounts[i] * 100, decided)
        )
    return grants


#: the operators that publish their grants as SCDL « subventions » files (the others push JSON batches)
SCDL_OPERATORS = {"ANCT": ("Agence nationale de la cohésion des territoires", "13002603200016")}


def _grant_batches(grants: list[dict[str, Any]]) -> list[Write]:
    """One batch per month of decision, effective at the end of that month's last decision day: ANCT's
    grants of the month as its SCDL « subventions » file, the other operators' as a JSON batch."""
    by_month: dict[str, list[dict[str, Any]]] = {}
    for grant in sorted(grants, key=lambda g: (g["decision_date"], g["operator"], g["operator_ref"])):
        by_month.setdefault(grant["decision_date"][:7], []).append(grant)
    batches = []
    for month, items in sorted(by_month.items()):
        last = date.fromisoformat(max(g["decision_date"] for g in items))
        at = datetime(last.year, last.month, last.day, 17, 0, tzinfo=UTC)
        pushed = [g for g in items if g["operator"] not in SCDL_OPERATORS]
        published = [g for g in items if g["operator"] in SCDL_OPERATORS]
        if pushed:
            batches.append(Write("funding-ledger", "POST", "/v1/grant-batches", {"items": pushed, "mode": "partial"}, at, f"batch-{month}"))
        if published:
            batches.append(
                Write(
                    "funding-ledger", "POST", "/v1/grant-batches", {"items": published, "mode": "partial"}, at,
                    f"scdl-{month}", media_type="text/csv",
                )
            )
    return batches


#: SCDL « subventions » 2.1.1's columns, in the schema's order, then the platform's that the programme needs
SCDL_GRANT_COLUMNS = (
    "nomAttribuant", "idAttribuant", "dateConvention", "referenceDecision", "nomBeneficiaire", "idBeneficiaire",
    "rnaBeneficiaire", "objet", "montant", "nature", "conditionsVersement", "datesPeriodeVersement", "idRAE",
    "notificationUE", "pourcentageSubvention", "dispositifAide",
    "operator", "operator_ref", "territory_id", "commune_insee", "beneficiary_kind",
)


#: the fields an SCDL file of the demo does not write: each grant it carries has them empty
_NOT_IN_SCDL = ("action_id", "investment_eur", "jobs_forecast", "jobs_conditional", "contributions", "value_chain")


def scdl_csv(grants: Sequence[dict[str, Any]]) -> str:
    """Grants as their operator publishes them: an SCDL « subventions » 2.1.1 file (``,``-separated UTF-8),
    the decisions of a month under one ``referenceDecision`` (as in real files), with the platform's columns
    for the key, the place and the beneficiary's kind. A grant with a field the file cannot carry is refused."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=",", lineterminator="\r\n")
    writer.writerow(SCDL_GRANT_COLUMNS)
    for g in grants:
        if any(g[name] for name in _NOT_IN_SCDL) or g["status"] != "committed":
            raise ValueError(f"grant {g['operator']}/{g['operator_ref']} has fields an SCDL file of the demo does not carry")
        label, siret = SCDL_OPERATORS[g["operator"]]
        b = g["beneficiary"]
        writer.writerow([
            label, siret, g["decision_date"], f"DG-{g['operator']}-{g['decision_date'][:7]}", b["name"], b["siret"] or "",
            b["rna"] or "", g["object"], g["amount_eur"], "aide en numéraire", "unique", g["decision_date"], "", "non", "1.00",
            g["programme"], g["operator"], g["operator_ref"], g["territory_id"] or "", g["commune_insee"] or "", b["kind"],
        ])
    return out.getvalue()


# --- sites ---------------------------------------------------------------------------------------


def _site_areas(rng: random.Random) -> list[Decimal]:
    half = (F.SITES - 1) // 2
    lower = [Decimal(rng.randint(8, 77)) / 2 for _ in range(half)]  # 4.00 … 38.50 ha
    upper_total = F.SITES_AREA_TOTAL - F.SITES_AREA_MEDIAN - sum(lower)
    floor = Decimal("40")
    weights = [rng.lognormvariate(0, 0.9) for _ in range(half)]
    cents = allocate(int((upper_total - floor * half) * 100), weights)
    upper = [floor + Decimal(c) / 100 for c in cents]
    return [*lower, F.SITES_AREA_MEDIAN, *upper]


def _place_of(territory_name: str) -> str:
    """« Bassin de Lorient » → « Lorient »; « Vallée de la Meuse » stays whole."""
    for prefix in ("Bassin de ", "Bassin d'", "Bassin du ", "Pays de ", "Pays d'", "Pays du "):
        if territory_name.startswith(prefix):
            rest = territory_name[len(prefix) :]
            return ("Le " + rest) if prefix.endswith("du ") else rest
    return territory_name


def _sites(rng: random.Random, territories: list[_Territory]) -> list[Write]:
    areas = _site_areas(rng)
    n = len(areas)
    half = (n - 1) // 2
    recycling = set(rng.sample(range(half), 12)) | set(rng.sample(range(half + 1, n), F.SITES_LAND_RECYCLING - 12))
    maturities = [m for m, k in F.SITES_BY_MATURITY.items() for _ in range(k)]
    rng.shuffle(maturities)
    workshop = set(rng.sample(range(n), F.SITES_WORKSHOP_HELD))
    roadmap = set(rng.sample(sorted(workshop), F.SITES_ROADMAPS))
    hosts = rng.sample(territories, n)
    writes = []
    for i, (area, territory) in enumerate(zip(areas, hosts, strict=True)):
        commune = _commune(rng, territory.departement)
        site_id = f"{commune}_SITE-ECO_{i + 1:05d}"
        place = _de(_place_of(territory.name))
        if i in recycling:
            name = f"Friche industrielle {place}"
        else:
            kind = rng.choice(("Parc industriel", "Zone d'activités", "Pôle industriel"))
            name = f"{kind} {place}"
        body = {
            "name": f"{name} n° {i + 1}",
            "commune_insee": commune,
            "territory_id": territory.id,
            "area_ha": format_decimal(area),
            "maturity": maturities[i],
            "land_recycling": i in recycling,
            "labelled_on": F.SITES_LABELLED_ON,
            "workshop_held": i in workshop,
            "roadmap_delivered": i in roadmap,
            "owner_kind": rng.choice(("collectivite", "collectivite", "entreprise", "etablissement_public")),
            "status": "labelled",
        }
        # the inventory's own words for them, which the catalogue keeps as written
        body["cnig"] = {
            "site_type": "zone d'activité économique",
            "site_evol_urba": "renouvellement urbain" if body["land_recycling"] else "extension urbaine",
            "site_moa_type": _MOA_TYPE[str(body["owner_kind"])],
        }
        writes.append(Write("site-catalog", "PUT", f"/v1/sites/{site_id}", body, SITES_LABELLED_AT, site_id))
    return writes


def generate(seed: int = F.SEED) -> DemoProgramme:
    """The whole demo programme for ``seed`` (pure and deterministic)."""
    rng = random.Random(seed)
    ids = _Identifiers()
    territories, territory_writes = _territories(rng, ids)
    actions = _actions(rng, territories)
    grants = [*_fonds_vert(rng, ids, territories), *_rebond(rng, ids, territories), *_ingenierie_anct(rng, territories)]
    sites = _sites(rng, territories)
    grants += _cofinancement(seed, territories)
    return DemoProgramme(
        seed=seed,
        territories=territory_writes,
        actions=actions,
        grant_batches=_grant_batches(grants),
        sites=sites,
    )
