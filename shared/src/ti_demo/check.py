"""Each figure of BILAN.md next to the value the national indicators give."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from ti_demo import figures as F


@dataclass(frozen=True)
class Figure:
    section: str
    label: str
    printed: str
    actual: str
    ok: bool


def _get(indicators: dict[str, Any], *path: str) -> Any:
    value: Any = indicators
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value is not None else None
    except InvalidOperation:
        return None


def _percent(value: Any) -> int | None:
    return round(100 * float(value)) if isinstance(value, int | float) else None


def compare(national: dict[str, Any], launch: dict[str, Any]) -> list[Figure]:
    """``national``: the indicators at the report's date (or now); ``launch``: as of 2023-11-30."""
    out: list[Figure] = []

    def exact(section: str, label: str, expected: int, actual: Any) -> None:
        out.append(Figure(section, label, str(expected), str(actual), actual == expected))

    def share(section: str, label: str, percent: int, actual: Any) -> None:
        got = _percent(actual)
        shown = f"{100 * float(actual):.2f} %" if got is not None else str(actual)
        out.append(Figure(section, label, f"{percent} %", shown, got == percent))

    def money(section: str, label: str, printed: str, actual: Any, ok: Callable[[Decimal], bool]) -> None:
        value = _decimal(actual)
        shown = f"{value / 1_000_000:.2f} M€" if value is not None else str(actual)
        out.append(Figure(section, label, printed, shown, value is not None and ok(value)))

    s = "Programme and network"
    exact(s, "labelled territories", F.TERRITORIES, national.get("territories.count"))
    exact(s, "EPCI covered", F.EPCIS, national.get("territories.epci_count"))
    exact(s, "regions", F.REGIONS, national.get("territories.region_count"))
    exact(s, "project leads in post", F.PROJECT_LEADS_IN_POST, national.get("territories.project_leads_in_post"))
    exact(s, "project leads co-financed", F.PROJECT_LEADS_COFINANCED, national.get("territories.project_leads_cofinanced"))
    cofinancing = _get(national, "grants.by_programme", F.COFINANCEMENT, "amount_eur")
    money(s, "State co-financing of project leads", "6.7 M€", cofinancing, lambda v: round(v / 100_000) == 67)
    exact(s, "launch COPIL held", F.LAUNCH_COPIL_HELD, national.get("territories.launch_copil_held"))

    s = "Action plans"
    exact(s, "actions listed", F.ACTIONS, national.get("actions.count"))
    exact(s, "actions at the launch (as of 2023-11-30)", F.ACTIONS_AT_LAUNCH, launch.get("actions.count"))
    for axis, percent in F.AXIS_SHARES.items():
        share(s, f"axis {axis}", percent, _get(national, "actions.by_axis_share", axis))
    for theme, count in F.THEME_COUNTS.items():
        exact(s, f"theme {theme}", count, _get(national, "actions.by_theme", theme))
    for status, percent in F.STATUS_SHARES.items():
        share(s, f"status {status}", percent, _get(national, "actions.by_status_share", status))

    s = "Fonds vert (ADEME)"
    fv = _get(national, "grants.by_programme", F.FONDS_VERT) or {}
    exact(s, "projects", F.FONDS_VERT_GRANTS, fv.get("count"))
    money(s, "grants", "63 M€", fv.get("amount_eur"), lambda v: round(v / 1_000_000) == 63)
    money(s, "industrial investment", "776 M€", fv.get("investment_eur"), lambda v: round(v / 1_000_000) == 776)
    exact(s, "territories", F.FONDS_VERT_TERRITORIES, fv.get("territory_count"))
    exact(s, "départements", F.FONDS_VERT_DEPARTEMENTS, fv.get("departement_count"))
    exact(s, "forecast jobs", F.FONDS_VERT_JOBS, fv.get("jobs_forecast"))
    exact(s, "jobs conditional on the grant", F.FONDS_VERT_JOBS_CONDITIONAL, fv.get("jobs_conditional"))
    for objective, percent in F.FONDS_VERT_CONTRIBUTION_SHARES.items():
        share(s, f"contribution {objective}", percent, _get(fv, "contribution_share", objective))
    for chain, percent in F.FONDS_VERT_VALUE_CHAIN_SHARES.items():
        share(s, f"value chain {chain}", percent, _get(fv, "value_chain_share", chain))

    s = "Rebond industriel and engineering"
    rebond = _get(national, "grants.by_programme", F.REBOND) or {}
    money(s, "Rebond industriel grants", "39.7 M€", rebond.get("amount_eur"), lambda v: round(v / 100_000) == 397)
    exact(s, "Rebond industriel territories", F.REBOND_TERRITORIES, rebond.get("territory_count"))
    for code, label in ((F.INGENIERIE_REBOND, "Rebond engineering"), (F.INGENIERIE_ANCT, "ANCT engineering")):
        amount = _get(national, "grants.by_programme", code, "amount_eur")
        money(s, label, "2 M€", amount, lambda v: round(v / 1_000_000) == 2)

    s = "Sites clés en main"
    exact(s, "labelled sites", F.SITES, national.get("sites.count"))
    for code, label, printed in (
        ("sites.area_ha_total", "total surface", 2942),
        ("sites.area_ha_mean", "mean surface", F.SITES_AREA_MEAN),
        ("sites.area_ha_median", "median surface", 39),
    ):
        value = _decimal(national.get(code))
        out.append(Figure(s, label, f"{printed} ha", f"{value} ha", value is not None and round(value) == printed))
    for maturity, count in F.SITES_BY_MATURITY.items():
        exact(s, f"maturity {maturity}", count, _get(national, "sites.by_maturity", maturity))
    exact(s, "land recycling sites", F.SITES_LAND_RECYCLING, national.get("sites.land_recycling_count"))
    area = _decimal(national.get("sites.land_recycling_area_ha"))
    out.append(Figure(s, "land recycling surface", "> 1,000 ha", f"{area} ha", area is not None and area > 1000))
    workshop = national.get("sites.workshop_held_share")
    held = round(float(workshop) * F.SITES) if isinstance(workshop, int | float) else None
    out.append(
        Figure(
            s,
            "workshops held (nearest share to 88 % with 55 sites)",
            f"{F.SITES_WORKSHOP_SHARE_PRINTED} %",
            f"{100 * float(workshop):.2f} % ({held} sites)" if isinstance(workshop, int | float) else str(workshop),
            held in (48, 49),
        )
    )
    exact(s, "roadmaps delivered", F.SITES_ROADMAPS, national.get("sites.roadmap_delivered_count"))
    return out
