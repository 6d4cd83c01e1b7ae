"""Shared test helpers of the site catalogue: generated CNIG-shaped site files (deterministic)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

HEADER = [
    "site_id", "pole_id", "site_nom", "site_type", "site_comm_nom", "site_comm_insee", "site_surf_brute",
    "site_moa_type", "site_maturite", "site_friche", "site_date_label", "site_atelier", "site_feuille_route",
    "site_proprietaire", "site_statut", "territory_id",
]

#: (commune code, commune name, territory id in that region)
COMMUNES = [
    ("13004", "Arles", "ti-9303"), ("84007", "Avignon", "ti-9303"), ("01053", "Bourg-en-Bresse", "ti-8402"),
    ("38185", "Grenoble", "ti-8402"), ("71076", "Chalon-sur-Saône", "ti-2705"), ("25056", "Besançon", "ti-2705"),
    ("59350", "Lille", "ti-3201"), ("62041", "Arras", "ti-3201"), ("2A004", "Ajaccio", None),
    ("97411", "Saint-Denis", None), ("44109", "Nantes", None), ("29019", "Brest", None),
]
TERRITORIES = {"ti-9303": "93", "ti-8402": "84", "ti-2705": "27", "ti-3201": "32"}
MATURITIES = ["ready", "court terme", "avant 2030", "disponible", "short_term", "before_2030"]
FLAGS_TRUE = ["oui", "true", "1", "Oui"]
FLAGS_FALSE = ["non", "false", "0", "NON"]
OWNERS = ["entreprise", "collectivité", "établissement public", "association", "autre", "EPCI"]


@dataclass
class SiteFile:
    content: bytes
    good_ids: list[str]
    #: row number (header = 1) → the column expected at fault
    bad_rows: dict[int, str] = field(default_factory=dict)


def french(value: float) -> str:
    return f"{value:.2f}".replace(".", ",")


def generate_site_file(count: int = 55, *, bad: bool = True, seed: int = 7) -> SiteFile:
    """``count`` sites as ANCT would send them: Latin-1, ``;``, French decimals, some bad rows."""
    rng = random.Random(seed)
    lines = [";".join(HEADER)]
    good: list[str] = []
    bad_rows: dict[int, str] = {}
    for n in range(1, count + 1):
        commune, commune_name, territory = COMMUNES[n % len(COMMUNES)]
        site_id = f"{commune}_SITE-ECO_{n:05d}"
        cells = {
            "site_id": site_id,
            "pole_id": f"{commune}_POLE-ECO_{n:05d}",
            "site_nom": f"Zone d'activités n°{n} de l'Étang - {commune_name}",
            "site_type": "zone d'activité économique",
            "site_comm_nom": commune_name,
            "site_comm_insee": commune,
            "site_surf_brute": french(rng.randint(100, 9000) / 100),
            "site_moa_type": "epci",
            "site_maturite": rng.choice(MATURITIES),
            "site_friche": rng.choice(FLAGS_TRUE + FLAGS_FALSE),
            "site_date_label": f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/2024" if n % 2 else f"2023-{rng.randint(1, 12):02d}-15",
            "site_atelier": rng.choice(FLAGS_TRUE + FLAGS_FALSE),
            "site_feuille_route": rng.choice(FLAGS_TRUE + FLAGS_FALSE),
            "site_proprietaire": rng.choice(OWNERS),
            "site_statut": "labellisé" if n % 11 else "retiré",
            "territory_id": territory or "",
        }
        row = n + 1
        if bad and n == 5:
            cells["site_comm_insee"] = "20004"
            bad_rows[row] = "site_comm_insee"
        elif bad and n == 17:
            cells["site_surf_brute"] = "-3,5"
            bad_rows[row] = "site_surf_brute"
        elif bad and n == 23:
            cells["site_maturite"] = "un jour peut-être"
            bad_rows[row] = "site_maturite"
        elif bad and n == 31:
            cells["site_friche"] = "peut-être"
            bad_rows[row] = "site_friche"
        elif bad and n == 42:
            cells["territory_id"] = "ti-9999"
            bad_rows[row] = "territory_id"
        elif bad and n == 48:
            cells["site_id"] = good[0]
            bad_rows[row] = "site_id"
        else:
            good.append(site_id)
        lines.append(";".join(cells[h] for h in HEADER))
    return SiteFile(("\r\n".join(lines) + "\r\n").encode("latin-1", errors="replace"), good, bad_rows)


@pytest.fixture
def site_file() -> Callable[..., SiteFile]:
    return generate_site_file
