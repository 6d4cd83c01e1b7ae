"""What a page (or the Bilan) shows, built from indicator documents and the catalogue only (pure).

The sections follow the report: the programme and its network, the action plans, the funding
programmes, the sites clés en main. Each figure keeps the indicator code and the breakdown path it
was read from, its raw API value (the page writes it in ``data-value``), and its value at the
comparison date when one is asked for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from ti_shared.geo import REGIONS

from reporting.dashboard import formatting as fmt

Catalogue = Mapping[str, Mapping[str, Any]]
Document = Mapping[str, Any]

_ABSENT = object()

#: indicators the map can colour the regions by
MAP_INDICATORS = (
    "territories.count",
    "territories.project_leads_in_post",
    "actions.count",
    "grants.count",
    "grants.amount_eur",
    "grants.investment_eur",
    "grants.jobs_forecast",
    "sites.count",
    "sites.area_ha_total",
)
DEFAULT_MAP_INDICATOR = "territories.count"


def read(document: Document | None, code: str, path: tuple[str, ...] = ()) -> Any:
    """The value at ``code`` then ``path`` in a document's indicators; ``_ABSENT`` when not there."""
    if document is None:
        return _ABSENT
    value: Any = document.get("indicators", {}).get(code, _ABSENT)
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return _ABSENT
        value = value[key]
    return value


def figure_id(code: str, key: str = "") -> str:
    """The HTML id of a figure on its page (the explanation's back link points to it)."""
    return "f-" + re.sub(r"[^a-z0-9]+", "-", f"{code}-{key}".lower()).strip("-")


@dataclass(frozen=True)
class Figure:
    code: str
    path: tuple[str, ...]
    label: str
    definition: str
    kind: fmt.Kind
    value: Any
    compare: Any = _ABSENT

    @property
    def key(self) -> str:
        return ".".join(self.path)

    @property
    def id(self) -> str:
        return figure_id(self.code, self.key)

    @property
    def text(self) -> str:
        return fmt.text(self.value, self.kind)

    @property
    def exact(self) -> str | None:
        return fmt.exact(self.value, self.kind)

    @property
    def compared(self) -> bool:
        return self.compare is not _ABSENT

    @property
    def compare_text(self) -> str:
        return fmt.text(self.compare, self.kind) if self.compared else ""

    @property
    def delta(self) -> str | None:
        return fmt.delta(self.value, self.compare, self.kind) if self.compared else None

    @property
    def ratio(self) -> float:
        """Where a bar of this figure ends (0–1): the share itself, or set by the chart for counts."""
        n = fmt.number(self.value)
        return float(n) if n is not None and self.kind == "share" else 0.0


@dataclass(frozen=True)
class Bar:
    figure: Figure
    ratio: float  # 0–1, the length of the bar


@dataclass(frozen=True)
class Tiles:
    title: str
    figures: list[Figure]
    kind: ClassVar[str] = "tiles"


@dataclass(frozen=True)
class Bars:
    title: str
    bars: list[Bar]
    caption: str = ""
    kind: ClassVar[str] = "bars"


@dataclass(frozen=True)
class StackedRow:
    code: str
    label: str
    href: str | None
    total: int
    segments: list[tuple[str, int, float]]  # (status, count, share of the row)
    compare_total: int | None = None
    compare_segments: dict[str, int] | None = None  # status → count at the comparison date

    @property
    def total_text(self) -> str:
        return fmt.text(self.total, "count")

    @property
    def compare_text(self) -> str:
        return fmt.text(self.compare_total, "count")

    @property
    def delta(self) -> str | None:
        return fmt.delta(self.total, self.compare_total, "count")


@dataclass(frozen=True)
class Stacked:
    title: str
    code: str
    legend: list[tuple[str, str]]  # (status, label)
    rows: list[StackedRow]
    definition: str = ""
    compared: bool = False
    kind: ClassVar[str] = "stacked"

    @property
    def legend_labels(self) -> dict[str, str]:
        return dict(self.legend)


Block = Tiles | Bars | Stacked


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)

    def figures(self) -> list[Figure]:
        out: list[Figure] = []
        for b in self.blocks:
            if isinstance(b, Tiles):
                out += b.figures
            elif isinstance(b, Bars):
                out += [bar.figure for bar in b.bars]
        return out


class Builder:
    """Figures of one scope at one instant (and at the comparison instant)."""

    def __init__(self, catalogue: Catalogue, document: Document, compare: Document | None = None) -> None:
        self.catalogue = catalogue
        self.document = document
        self.compare_document = compare

    def entry(self, code: str) -> Mapping[str, Any]:
        return self.catalogue.get(code, {"label": code, "definition": "", "unit": "", "breakdown_labels": {}})

    def key_label(self, code: str, key: str) -> str:
        labels: Mapping[str, str] = self.entry(code).get("breakdown_labels") or {}
        return labels.get(key, key)

    def figure(self, code: str, *path: str, label: str | None = None) -> Figure | None:
        value = read(self.document, code, path)
        if value is _ABSENT:
            return None
        entry = self.entry(code)
        unit = str(entry.get("unit", ""))
        key = ".".join(path)
        if label is None:
            label = self.key_label(code, path[-1]) if path else str(entry["label"])
        definition = str(entry.get("definition", ""))
        if path:
            definition = f"{entry['label']} — {' › '.join(self.key_label(code, k) for k in path)}. {definition}"
        compare = read(self.compare_document, code, path) if self.compare_document is not None else _ABSENT
        if self.compare_document is not None and compare is _ABSENT:
            compare = None
        return Figure(code, path, label, definition, fmt.kind_of_unit(unit, key), value, compare)

    def tiles(self, title: str, *specs: tuple[str, ...]) -> Tiles:
        figures = [f for spec in specs if (f := self.figure(*spec)) is not None]
        return Tiles(title, figures)

    def bars(self, title: str, code: str, *prefix: str, keys: list[str] | None = None, caption: str = "") -> Bars:
        values = read(self.document, code, prefix)
        if not isinstance(values, dict):
            return Bars(title, [], caption)
        figures = [f for k in (keys or list(values)) if (f := self.figure(code, *prefix, k)) is not None]
        if figures and all(f.kind == "share" for f in figures):
            return Bars(title, [Bar(f, f.ratio) for f in figures], caption)
        top = max((fmt.number(f.value) or 0 for f in figures), default=0) or 1
        return Bars(title, [Bar(f, float((fmt.number(f.value) or 0) / top)) for f in figures], caption)


def network(b: Builder) -> Section:
    section = Section("reseau", "Le programme et son réseau")
    section.blocks.append(
        b.tiles(
            "Territoires d'industrie",
            ("territories.count",),
            ("territories.epci_count",),
            ("territories.region_count",),
            ("territories.project_leads_in_post",),
            ("territories.project_leads_cofinanced",),
            ("territories.launch_copil_held",),
        )
    )
    cofinancing = b.figure("grants.by_programme", "cofinancement_chef_projet", "amount_eur",
                           label="Cofinancement des chefs de projet par l'État")
    if cofinancing is not None:
        section.blocks.append(Tiles("Animation", [cofinancing]))
    return section


def action_plans(b: Builder, region_href: Mapping[str, str] | None = None) -> Section:
    section = Section("plans-action", "Les plans d'action")
    section.blocks.append(b.tiles("Actions", ("actions.count",)))
    section.blocks.append(b.bars("Répartition des actions par axe", "actions.by_axis_share"))
    section.blocks.append(b.bars("Actions par axe", "actions.by_axis"))
    section.blocks.append(b.bars("Actions par thématique (une action peut en porter plusieurs)", "actions.by_theme"))
    section.blocks.append(b.bars("Avancement des actions (part)", "actions.by_status_share"))
    section.blocks.append(b.bars("Avancement des actions (nombre)", "actions.by_status"))
    by_region = read(b.document, "actions.by_region_status")
    if isinstance(by_region, dict):
        statuses = list(b.entry("actions.by_status").get("breakdown") or [])
        if not statuses:
            statuses = list(next(iter(by_region.values()), {}))
        before = read(b.compare_document, "actions.by_region_status") if b.compare_document is not None else _ABSENT
        rows = []
        for region, counts in by_region.items():
            total = sum(int(counts.get(s, 0)) for s in statuses)
            segments = [(s, int(counts.get(s, 0)), (int(counts.get(s, 0)) / total) if total else 0.0) for s in statuses]
            then = before.get(region) if isinstance(before, dict) else None
            compared: dict[str, Any] = {"compare_total": None, "compare_segments": None}
            if isinstance(then, dict):
                compared = {"compare_total": sum(int(then.get(s, 0)) for s in statuses),
                            "compare_segments": {s: int(then.get(s, 0)) for s in statuses}}
            rows.append(StackedRow(region, b.key_label("actions.by_region_status", region), (region_href or {}).get(region),
                                   total, segments, **compared))
        legend = [(s, b.key_label("actions.by_status", s)) for s in statuses]
        entry = b.entry("actions.by_region_status")
        section.blocks.append(Stacked("Avancement des actions par région", "actions.by_region_status", legend, rows,
                                      str(entry.get("definition", "")), b.compare_document is not None))
    return section


_PROGRAMME_TILES = ("count", "amount_eur", "investment_eur", "jobs_forecast", "jobs_conditional", "territory_count",
                    "departement_count")


def funding(b: Builder) -> Section:
    section = Section("financements", "Financer les projets")
    section.blocks.append(
        b.tiles(
            "Toutes les subventions engagées",
            ("grants.count",),
            ("grants.amount_eur",),
            ("grants.investment_eur",),
            ("grants.disbursed_eur",),
            ("grants.jobs_forecast",),
            ("grants.jobs_conditional",),
            ("grants.territory_count",),
            ("grants.departement_count",),
        )
    )
    programmes = read(b.document, "grants.by_programme")
    if not isinstance(programmes, dict):
        return section
    for code in programmes:
        title = b.key_label("grants.by_programme", code)
        section.blocks.append(
            Tiles(title, [f for k in _PROGRAMME_TILES if (f := b.figure("grants.by_programme", code, k)) is not None])
        )
        section.blocks.append(b.bars(f"{title} — contribution aux objectifs environnementaux", "grants.by_programme", code,
                                     "contribution_share"))
        section.blocks.append(b.bars(f"{title} — filières", "grants.by_programme", code, "value_chain_share"))
    return section


def sites(b: Builder) -> Section:
    section = Section("sites", "Sites clés en main France 2030")
    section.blocks.append(
        b.tiles(
            "Sites labellisés",
            ("sites.count",),
            ("sites.area_ha_total",),
            ("sites.area_ha_mean",),
            ("sites.area_ha_median",),
            ("sites.land_recycling_count",),
            ("sites.land_recycling_area_ha",),
            ("sites.workshop_held_share",),
            ("sites.roadmap_delivered_count",),
        )
    )
    section.blocks.append(b.bars("Sites par maturité", "sites.by_maturity"))
    return section


def sections(b: Builder, region_href: Mapping[str, str] | None = None) -> list[Section]:
    return [network(b), action_plans(b, region_href), funding(b), sites(b)]


# --- the map ----------------------------------------------------------------------------------

#: DSFR « bleu France » shades, lightest to darkest, for five classes of equal width
MAP_COLOURS = ("#ececfe", "#cacafb", "#8585f6", "#6a6af4", "#000091")


@dataclass(frozen=True)
class MapRegion:
    code: str
    name: str
    href: str
    value: Any
    text: str
    colour: str
    compare: Any = _ABSENT
    compare_text: str = ""
    delta: str | None = None

    @property
    def compared(self) -> bool:
        return self.compare is not _ABSENT


@dataclass(frozen=True)
class MapLegend:
    colour: str
    text: str


def map_regions(
    catalogue: Catalogue, code: str, documents: Mapping[str, Document], names: Mapping[str, str], hrefs: Mapping[str, str],
    compare: Mapping[str, Document] | None = None,
) -> tuple[list[MapRegion], list[MapLegend]]:
    """The regions coloured by ``code`` (``documents``: region code → its indicators document; ``compare``:
    the same at the comparison date, each region's value then and the difference)."""
    kind = fmt.kind_of_unit(str(catalogue.get(code, {}).get("unit", "")))
    values = {r: read(d, code) for r, d in documents.items()}
    numbers = {r: fmt.number(v) if v is not _ABSENT else None for r, v in values.items()}
    top = max((n for n in numbers.values() if n is not None), default=None)
    step = (top / len(MAP_COLOURS)) if top else None
    regions = []
    for r, name in names.items():
        n = numbers.get(r)
        index = 0 if n is None or not step else min(len(MAP_COLOURS) - 1, int(n / step))
        value = values.get(r)
        compared: dict[str, Any] = {}
        if compare is not None:
            then = read(compare.get(r), code)
            then = None if then is _ABSENT else then
            compared = {"compare": then, "compare_text": fmt.text(then, kind), "delta": fmt.delta(value, then, kind)}
        regions.append(MapRegion(r, name, hrefs[r], None if value is _ABSENT else value, fmt.text(value, kind),
                                 MAP_COLOURS[index], **compared))
    legend = []
    for i, colour in enumerate(MAP_COLOURS):
        if step:
            low, high = step * i, step * (i + 1)
            legend.append(MapLegend(colour, f"{fmt.text(low, kind)} – {fmt.text(high, kind)}"))
    return regions, legend


# --- editions ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestatedFigure:
    """One figure of an edition that a later, back-dated write changed."""

    code: str
    key: str
    label: str
    published: Any
    now: Any
    published_text: str
    now_text: str
    events: list[str]


def _event_text(event: Mapping[str, Any]) -> str:
    published = event.get("published_version")
    version = f"v{published} → v{event['version']}" if published else f"v{event['version']}, nouveau"
    at = fmt.instant(datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00")))
    return f"{event['entity']} {event['subject']} ({version}, daté du {at})"


def restated_figures(catalogue: Catalogue, items: list[Mapping[str, Any]]) -> list[RestatedFigure]:
    """The restatements of an edition (``GET …/restatements``), labelled and formatted."""
    b = Builder(catalogue, {})
    out = []
    for item in items:
        code, key = str(item["code"]), str(item["key"])
        entry = b.entry(code)
        label = str(entry["label"]) + "".join(f" › {b.key_label(code, k)}" for k in key.split(".") if k)
        kind = fmt.kind_of_unit(str(entry.get("unit", "")), key)
        out.append(RestatedFigure(
            code, key, label, item["published"], item["now"], fmt.text(item["published"], kind), fmt.text(item["now"], kind),
            [_event_text(e) for e in item["events"]],
        ))
    return out


# --- the explanation of a figure ------------------------------------------------------------------

ENTITY_LABELS = {"territory": "Territoire", "action": "Action", "grant": "Subvention", "site": "Site"}
#: the inputs of the indicators that are not themselves a figure of the catalogue
INPUT_LABELS = {
    "sites.workshop_held": "Atelier d'accompagnement tenu",
    "sites.area_ha": "Surface du site (pour la médiane)",
    "epci": "EPCI couverts (SIREN)",
    "region": "Région",
    "grant_territory": "Territoire lauréat",
    "grant_departement": "Département lauréat",
}


def figure_label(catalogue: Catalogue, code: str, key: str = "") -> str:
    """« Actions par axe › Innovation »: the indicator's label, then its breakdown keys' labels."""
    b = Builder(catalogue, {})
    return str(b.entry(code)["label"]) + "".join(f" › {b.key_label(code, k)}" for k in key.split(".") if k)


def input_label(catalogue: Catalogue, name: str) -> str:
    """The French name of one input an entity contributes (a counter or a reference kind)."""
    if name in catalogue:
        return str(catalogue[name]["label"])
    code = max((c for c in catalogue if name.startswith(c + ".")), key=len, default=None)
    if code is not None:
        return figure_label(catalogue, code, name[len(code) + 1:])
    kind, _, programme = name.partition(":")
    label = INPUT_LABELS.get(kind, kind)
    if programme:
        label += " — " + Builder(catalogue, {}).key_label("grants.by_programme", programme)
    return label


def input_text(name: str, value: Any) -> str:
    """What an entity contributes to one input, in French: ``1``, ``1 500 000,00 €``, ``25,5 ha``, values listed."""
    if isinstance(value, list):
        if name == "region":
            return ", ".join(f"{REGIONS.get(str(v), v)} ({v})" for v in value)
        return ", ".join(str(v) for v in value)
    if name.endswith("_eur"):
        return fmt.full(value, "money")
    if "area_ha" in name:
        return fmt.full(value, "area")
    return fmt.full(value, "count")


@dataclass(frozen=True)
class Contributed:
    label: str
    text: str


@dataclass(frozen=True)
class ExplainedRow:
    """One entity that makes the figure, as ``GET /v1/indicators/explain`` lists it."""

    entity: str
    entity_label: str
    id: str
    href: str | None
    version: int
    event_id: str
    time_text: str
    contribution: Mapping[str, Any]
    parts: list[Contributed]


def explained_rows(catalogue: Catalogue, items: list[Mapping[str, Any]], territory_href: Any) -> list[ExplainedRow]:
    """The API's items, labelled and formatted (``territory_href(id)``: a territory's page)."""
    return [
        ExplainedRow(
            str(i["entity"]), ENTITY_LABELS.get(str(i["entity"]), str(i["entity"])), str(i["id"]),
            territory_href(i["id"]) if i["entity"] == "territory" else None, int(i["version"]), str(i["event_id"]),
            fmt.instant(datetime.fromisoformat(str(i["time"]).replace("Z", "+00:00"))), i["contribution"],
            [Contributed(input_label(catalogue, name), input_text(name, value)) for name, value in i["contribution"].items()],
        )
        for i in items
    ]
