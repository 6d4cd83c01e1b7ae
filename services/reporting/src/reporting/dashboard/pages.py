"""The pages' content, read from the public API through a ``PlatformReader`` (no database access)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from ti_shared.geo import REGIONS

from reporting.dashboard import formatting as fmt
from reporting.dashboard import model
from reporting.dashboard.client import ApiError, PlatformReader, Territory, problem_of


@dataclass
class Links:
    """Where the pages are (``root``: the prefix the platform is served under, usually empty)."""

    root: str = ""
    as_of: str | None = None
    compare: str | None = None

    def query(self, **extra: str | None) -> str:
        params = {"as_of": self.as_of, "compare": self.compare, **extra}
        text = "&".join(f"{k}={v}" for k, v in params.items() if v)
        return f"?{text}" if text else ""

    def national(self) -> str:
        return f"{self.root}/dashboard{self.query()}"

    def region(self, code: str) -> str:
        return f"{self.root}/dashboard/regions/{code}{self.query()}"

    def territory(self, territory_id: str) -> str:
        return f"{self.root}/dashboard/territories/{territory_id}{self.query()}"

    def asset(self, path: str, version: str) -> str:
        return f"{self.root}/dashboard/assets/{path}?v={version}"

    def static(self, name: str, version: str) -> str:
        return f"{self.root}/dashboard/static/{name}?v={version}"

    def quality(self, scope: str = "national", sort: str | None = None) -> str:
        extra = {"scope": scope if scope != "national" else None, "sort": sort}
        params = {"as_of": self.as_of, **extra}
        text = "&".join(f"{k}={v}" for k, v in params.items() if v)
        return f"{self.root}/dashboard/quality" + (f"?{text}" if text else "")

    def editions(self) -> str:
        return f"{self.root}/dashboard/editions"

    def edition(self, edition_id: str) -> str:
        return f"{self.root}/dashboard/editions/{edition_id}"

    def api(self, scope: str, as_of: str | None) -> str:
        return f"{self.root}/v1/indicators?scope={scope}" + (f"&as_of={as_of}" if as_of else "")

    def diff(self, scope: str, now: str) -> str | None:
        """With a comparison: every figure that changed between the two dates and the events in between
        (``GET /v1/indicators/diff``; ``now``: the instant of the page's figures when it has no ``as_of``)."""
        if not self.compare:
            return None
        earlier, later = sorted((self.compare, self.as_of or now))
        return f"{self.root}/v1/indicators/diff?" + urlencode({"scope": scope, "from": earlier, "to": later})

    def scope(self, scope: str) -> str:
        """The page of a scope (``national``, ``region:<code>``, ``territory:<id>``)."""
        kind, _, code = scope.partition(":")
        return self.region(code) if kind == "region" else self.territory(code) if kind == "territory" else self.national()

    def _explain_params(self, scope: str, code: str, key: str, **extra: str | None) -> str:
        params = {"scope": scope, "code": code, "key": key or None, "as_of": self.as_of, **extra}
        return urlencode({k: v for k, v in params.items() if v})

    def explain(self, scope: str, code: str, key: str = "", **extra: str | None) -> str:
        """The page explaining one figure (one breakdown key of it): the entities that make it, as of the page's date."""
        return f"{self.root}/dashboard/explain?{self._explain_params(scope, code, key, **extra)}"

    def explain_api(self, scope: str, code: str, key: str = "", **extra: str | None) -> str:
        """The same explanation from the API (``GET /v1/indicators/explain``)."""
        return f"{self.root}/v1/indicators/explain?{self._explain_params(scope, code, key, **extra)}"

    def bilan(self, scope: str, fmt_: str) -> str:
        return f"{self.root}/v1/reports/bilan?scope={scope}&format={fmt_}" + (f"&as_of={self.as_of}" if self.as_of else "")


@dataclass
class Explained:
    """One page of a figure's explanation (``GET /v1/indicators/explain``), labelled."""

    code: str
    key: str
    label: str
    definition: str
    value: Any
    value_text: str
    rows: list[model.ExplainedRow]
    limit: int
    #: the figure on its page (with the page's date), the next page (the API's cursor), the first page, the JSON
    back_href: str
    next_href: str | None
    first_href: str | None
    api_href: str


@dataclass
class Page:
    scope: str
    title: str
    kind: str  # national | region | territory
    document: dict[str, Any]
    compare_document: dict[str, Any] | None
    catalogue: dict[str, dict[str, Any]]
    sections: list[model.Section]
    links: Links
    data_date: str
    compare_date: str | None = None
    breadcrumb: list[tuple[str, str | None]] = field(default_factory=list)
    territories: list[Territory] | None = None
    map_code: str | None = None
    map_regions: list[model.MapRegion] = field(default_factory=list)
    map_legend: list[model.MapLegend] = field(default_factory=list)
    map_choices: list[tuple[str, str]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    #: an edition's page: the edition (``GET /v1/reports/editions/{id}``) and its restated figures
    edition: dict[str, Any] | None = None
    restated: list[model.RestatedFigure] = field(default_factory=list)
    #: the editions' list page
    editions: list[dict[str, Any]] = field(default_factory=list)
    #: the data quality page: ``GET /v1/quality``'s document, and the territories' names
    quality: dict[str, Any] | None = None
    names: dict[str, str] = field(default_factory=dict)
    #: the explanation page: one page of ``GET /v1/indicators/explain`` and what the page shows of it
    explanation: Explained | None = None

    @property
    def compare_label(self) -> str:
        return f"au {fmt.when(self.links.compare)}" if self.links.compare else ""

    @property
    def map_label(self) -> str:
        return str(self.catalogue.get(self.map_code or "", {}).get("label", self.map_code or ""))

    @property
    def figures(self) -> list[model.Figure]:
        return [f for s in self.sections for f in s.figures()]


async def nothing() -> None:
    """What is awaited in place of a read a page does not need."""
    return None


async def _documents(
    api: PlatformReader, scope: str, as_of: str | None, compare: str | None
) -> tuple[dict[str, dict[str, Any]], dict[str, Any], dict[str, Any] | None]:
    try:
        catalogue, document, compare_document = await asyncio.gather(
            api.catalogue(), api.indicators(scope, as_of), api.indicators(scope, compare) if compare else nothing()
        )
    except ApiError as exc:
        raise problem_of(exc) from exc
    return catalogue, document, compare_document


def _page(
    scope: str, title: str, kind: str, links: Links, catalogue: dict[str, dict[str, Any]], document: dict[str, Any],
    compare_document: dict[str, Any] | None,
) -> Page:
    builder = model.Builder(catalogue, document, compare_document)
    hrefs = {code: links.region(code) for code in REGIONS}
    return Page(
        scope=scope,
        title=title,
        kind=kind,
        document=document,
        compare_document=compare_document,
        catalogue=catalogue,
        sections=model.sections(builder, hrefs),
        links=links,
        data_date=fmt.data_date(document.get("as_of"), document["generated_at"]),
        compare_date=fmt.data_date(compare_document.get("as_of"), compare_document["generated_at"]) if compare_document else None,
    )


async def national_page(api: PlatformReader, links: Links, map_code: str | None) -> Page:
    catalogue, document, compare_document = await _documents(api, "national", links.as_of, links.compare)
    page = _page("national", "Tableau de bord national", "national", links, catalogue, document, compare_document)
    page.map_code = map_code if map_code in model.MAP_INDICATORS else model.DEFAULT_MAP_INDICATOR
    scopes = [f"region:{code}" for code in REGIONS]
    try:
        regional, then = await asyncio.gather(
            api.many_indicators(scopes, links.as_of), api.many_indicators(scopes, links.compare) if links.compare else nothing()
        )
    except ApiError as exc:
        raise problem_of(exc) from exc

    def by_region(documents: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {s.removeprefix("region:"): d for s, d in documents.items()}

    page.map_regions, page.map_legend = model.map_regions(
        catalogue, page.map_code, by_region(regional), REGIONS, {code: links.region(code) for code in REGIONS},
        by_region(then) if then is not None else None,
    )
    page.map_choices = [(c, str(catalogue.get(c, {}).get("label", c))) for c in model.MAP_INDICATORS]
    page.breadcrumb = [("Tableau de bord national", None)]
    page.notices = api.notices
    return page


async def region_page(api: PlatformReader, links: Links, code: str) -> Page:
    scope = f"region:{code}"
    (catalogue, document, compare_document), territories = await asyncio.gather(
        _documents(api, scope, links.as_of, links.compare), api.territories(code)
    )
    name = REGIONS.get(code, code)
    page = _page(scope, f"Région {name}", "region", links, catalogue, document, compare_document)
    page.territories = sorted(territories, key=lambda t: t.name) if territories is not None else None
    page.breadcrumb = [("Tableau de bord national", links.national()), (name, None)]
    page.notices = api.notices
    return page


async def territory_page(api: PlatformReader, links: Links, territory_id: str) -> Page:
    scope = f"territory:{territory_id}"
    (catalogue, document, compare_document), territory = await asyncio.gather(
        _documents(api, scope, links.as_of, links.compare), api.territory(territory_id)
    )
    name = territory.name if territory is not None else territory_id
    page = _page(scope, f"Territoire d'industrie {name}", "territory", links, catalogue, document, compare_document)
    page.breadcrumb = [("Tableau de bord national", links.national())]
    if territory is not None and territory.region_code in REGIONS:
        page.breadcrumb.append((REGIONS[territory.region_code], links.region(territory.region_code)))
    page.breadcrumb.append((name, None))
    page.notices = api.notices
    return page


async def scope_page(api: PlatformReader, links: Links, scope: str, map_code: str | None = None) -> Page:
    """The page of any scope (``national``, ``region:<code>``, ``territory:<id>``), as the Bilan needs it."""
    if scope.startswith("region:"):
        return await region_page(api, links, scope.removeprefix("region:"))
    if scope.startswith("territory:"):
        return await territory_page(api, links, scope.removeprefix("territory:"))
    if scope != "national":
        # the API gives the precise 422 for a malformed scope
        await _documents(api, scope, links.as_of, None)
    return await national_page(api, links, map_code)


async def edition_page(api: PlatformReader, links: Links, edition_id: str) -> Page:
    """An edition: its figures as frozen, its sign-offs, and a notice listing every figure that a
    later, back-dated write has changed since."""
    try:
        edition, restated, catalogue = await asyncio.gather(
            api.edition(edition_id), api.restatements(edition_id), api.catalogue()
        )
    except ApiError as exc:
        raise problem_of(exc) from exc
    document: dict[str, Any] = edition["indicators"]
    links = Links(root=links.root, as_of=edition["as_of"])
    page = _page(edition["scope"], f"Édition « {edition['name']} »", "edition", links, catalogue, document, None)
    page.edition = edition
    page.restated = model.restated_figures(catalogue, restated["items"])
    page.breadcrumb = [("Tableau de bord national", links.national()), ("Éditions du bilan", links.editions()),
                       (edition["name"], None)]
    return page


async def editions_page(api: PlatformReader, links: Links) -> Page:
    try:
        editions, catalogue = await asyncio.gather(api.editions(), api.catalogue())
    except ApiError as exc:
        raise problem_of(exc) from exc
    document: dict[str, Any] = {"scope": "national", "as_of": None, "generated_at": datetime.now(UTC).isoformat(), "indicators": {}}
    page = Page(scope="national", title="Éditions du bilan", kind="editions", document=document, compare_document=None,
                catalogue=catalogue, sections=[], links=Links(root=links.root), data_date="")
    page.editions = editions
    page.breadcrumb = [("Tableau de bord national", links.national()), ("Éditions du bilan", None)]
    return page


async def quality_page(api: PlatformReader, links: Links, scope: str, sort: str) -> Page:
    """The data quality of a scope's territories, as ``GET /v1/quality`` gives it."""
    try:
        document, catalogue, territories = await asyncio.gather(
            api.quality(scope, links.as_of, sort), api.catalogue(), api.territories()
        )
    except ApiError as exc:
        raise problem_of(exc) from exc
    envelope: dict[str, Any] = {"scope": scope, "as_of": document["as_of"], "generated_at": document["generated_at"], "indicators": {}}
    page = Page(scope=scope, title="Qualité des données", kind="quality", document=envelope, compare_document=None,
                catalogue=catalogue, sections=[], links=Links(root=links.root, as_of=links.as_of),
                data_date=fmt.data_date(document["as_of"], document["generated_at"]))
    page.quality = document
    page.names = {t.id: t.name for t in territories or []}
    page.breadcrumb = [("Tableau de bord national", links.national()), ("Qualité des données", None)]
    page.notices = api.notices
    return page


EXPLAIN_PAGE_SIZE = 50


async def explain_page(
    api: PlatformReader, links: Links, scope: str, code: str, key: str, cursor: str | None, limit: int
) -> Page:
    """The entities that make one figure (or one breakdown key of it), one page of the API's at a time."""
    territory_id = scope.removeprefix("territory:") if scope.startswith("territory:") else None
    try:
        catalogue, body, territory = await asyncio.gather(
            api.catalogue(), api.explain(scope, code, key or None, links.as_of, cursor, limit),
            api.territory(territory_id) if territory_id else nothing(),
        )
    except ApiError as exc:
        raise problem_of(exc) from exc
    kind = fmt.kind_of_unit(str(catalogue[code].get("unit", "")), key)
    size = None if limit == EXPLAIN_PAGE_SIZE else str(limit)
    explained = Explained(
        code=code, key=key, label=model.figure_label(catalogue, code, key),
        definition=str(catalogue[code].get("definition", "")), value=body["value"],
        value_text=fmt.text(body["value"], kind) if not isinstance(body["value"], dict) else "",
        rows=model.explained_rows(catalogue, body["items"], links.territory), limit=limit,
        back_href=links.scope(body["scope"]) + "#" + model.figure_id(code, key),
        next_href=links.explain(scope, code, key, limit=size, cursor=body["next_cursor"]) if body["next_cursor"] else None,
        first_href=links.explain(scope, code, key, limit=size) if cursor else None,
        api_href=links.explain_api(scope, code, key, limit=str(limit), cursor=cursor),
    )
    document = {"scope": body["scope"], "as_of": body["as_of"], "generated_at": datetime.now(UTC).isoformat(), "indicators": {}}
    page = Page(scope=body["scope"], title="Détail du calcul", kind="explain", document=document, compare_document=None,
                catalogue=catalogue, sections=[], links=links, data_date=fmt.data_date(body["as_of"], document["generated_at"]))
    page.explanation = explained
    page.breadcrumb = [("Tableau de bord national", links.national())]
    if body["scope"].startswith("region:"):
        region = body["scope"].removeprefix("region:")
        page.breadcrumb.append((REGIONS.get(region, region), links.region(region)))
    elif territory_id:
        name = territory.name if territory is not None else territory_id
        if territory is not None and territory.region_code in REGIONS:
            page.breadcrumb.append((REGIONS[territory.region_code], links.region(territory.region_code)))
        page.breadcrumb.append((name, links.territory(territory_id)))
    page.breadcrumb.append(("Détail du calcul", None))
    page.notices = api.notices
    return page
