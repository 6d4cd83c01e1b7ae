"""Realistic ANCT-like files for the import tests: 183 territories over the 18 regions, ~630 EPCIs."""

from __future__ import annotations

import csv
import io
import random

import pytest
from ti_shared.geo import DEPARTEMENTS, REGIONS
from ti_shared.testing import official_cog_dir
from ti_shared.types import luhn_complete

#: territories per region (183 in all), roughly as the programme is spread
TERRITORIES_PER_REGION = {
    "01": 2, "02": 2, "03": 2, "04": 3, "06": 1, "11": 5, "24": 12, "27": 15, "28": 13,
    "32": 16, "44": 17, "52": 13, "53": 12, "75": 21, "76": 17, "84": 19, "93": 9, "94": 4,
}
EPCI_TOTAL = 630
PLACES = [
    "Bourg-en-Bresse", "Montbéliard", "Vallée de l'Arve", "Haut-Bugey", "Lacq-Orthez", "Saint-Étienne",
    "Pays de Redon", "Châtellerault", "Vierzon", "Béthune-Bruay", "Thiérache", "Vallée de la Bresle",
    "Pays de Gex", "Ambérieu", "Épinal", "Creusot-Montceau", "Figeac", "Rodez", "Castres-Mazamet",
    "Pays d'Épernay", "Issoire-Brioude", "Ancenis", "Cholet", "Fougères", "Vitré", "Lorient", "Dieppe",
    "Vernon", "Alençon", "Flers", "Saint-Dié", "Sedan", "Tulle", "Brive", "Rochefort", "Cognac",
]
KINDS = ["CC du Pays de", "CA de", "CC de la Vallée de", "CC des Portes de", "CU de"]


def generated_territories() -> list[dict[str, str]]:
    rng = random.Random(183)
    rows = []
    for region, count in TERRITORIES_PER_REGION.items():
        deps = [code for code, (_, reg) in DEPARTEMENTS.items() if reg == region]
        for n in range(1, count + 1):
            chosen = rng.sample(deps, k=min(len(deps), rng.choice([1, 1, 1, 2])))
            place = rng.choice(PLACES)
            rows.append(
                {
                    "id_ti": f"ti-{region}{n:02d}",
                    "lib_ti": f"{rng.choice(['Bassin de', 'Territoire de', 'Pays de', 'Portes de'])} {place} ({REGIONS[region]})",
                    "code_reg": region,
                    "codes_dep": "|".join(chosen),
                    "phase": "temps-2" if rng.random() < 0.8 else "temps-1",
                    "date_labellisation": f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/{rng.choice([2018, 2019, 2023])}",
                    "statut": "active",
                    "chef_projet_en_poste": rng.choice(["oui", "oui", "non"]),
                    "chef_projet_cofinance": rng.choice(["oui", "non"]),
                    "chef_projet_nom": rng.choice(["Camille Martin", "Léa Bérard", "Hélène Faure", "Noël Côté"]),
                    "chef_projet_email": f"chef.projet.{region}{n:02d}@example.fr",
                    "date_copil_lancement": rng.choice(["", f"2024-0{rng.randint(1, 9)}-15"]),
                }
            )
    return rows


def generated_groupements(territories: list[dict[str, str]]) -> list[dict[str, str]]:
    rng = random.Random(630)
    counts = [3] * len(territories)
    for _ in range(EPCI_TOTAL - sum(counts)):
        counts[rng.randrange(len(counts))] += 1
    rows = []
    serial = 0
    for territory, count in zip(territories, counts, strict=True):
        for _ in range(count):
            serial += 1
            rows.append(
                {
                    "id_ti": territory["id_ti"],
                    "lib_groupement": f"{rng.choice(KINDS)} {rng.choice(PLACES)} n°{serial}",
                    "siren_groupement": luhn_complete(f"2{serial:07d}"),
                }
            )
    return rows


def cog_communes() -> list[dict[str, str]]:
    """INSEE's communes (code, departement_code, region_code, name), read from the programme's COG."""
    text = (official_cog_dir() / "communes.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def generated_commune_list(communes: list[dict[str, str]]) -> list[dict[str, str]]:
    """ANCT's commune-level list as data.gouv publishes it (``insee_com, lib_com, id_ti, lib_ti``):
    183 territories over the 18 regions, each a run of real communes of one or two départements of
    its region, about 10,000 rows, ordered by territory."""
    rng = random.Random(10_000)
    by_departement: dict[str, list[dict[str, str]]] = {}
    for commune in communes:
        by_departement.setdefault(commune["departement_code"], []).append(commune)
    taken: dict[str, int] = dict.fromkeys(by_departement, 0)
    rows: list[dict[str, str]] = []
    for region, count in TERRITORIES_PER_REGION.items():
        deps = [code for code, (_, reg) in DEPARTEMENTS.items() if reg == region]
        for n in range(1, count + 1):
            name = f"{rng.choice(['Bassin de', 'Territoire de', 'Pays de', 'Portes de'])} {rng.choice(PLACES)} ({REGIONS[region]})"
            size = min(rng.randint(20, 68), sum(len(by_departement[d]) for d in deps) // count)
            left = sorted(deps, key=lambda d: taken[d] - len(by_departement[d]) + rng.random())
            for dep in left[: rng.choice([1, 1, 1, 2])]:
                start = taken[dep]
                chosen = by_departement[dep][start : start + size]
                taken[dep] = start + len(chosen)
                rows += [{"insee_com": c["code"], "lib_com": c["name"], "id_ti": f"ti-{region}{n:02d}", "lib_ti": name} for c in chosen]
    return rows


def to_csv(rows: list[dict[str, str]], *, sep: str = ";", encoding: str = "latin-1") -> bytes:
    header = list(rows[0])
    lines = [sep.join(header)] + [sep.join(r[h] for h in header) for r in rows]
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


@pytest.fixture(scope="session")
def territory_rows() -> list[dict[str, str]]:
    return generated_territories()


@pytest.fixture(scope="session")
def groupement_rows(territory_rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return generated_groupements(territory_rows)


@pytest.fixture(scope="session")
def territories_csv(territory_rows: list[dict[str, str]]) -> bytes:
    """The territories list as ANCT publishes it: Latin-1, ``;``-separated."""
    return to_csv(territory_rows)


@pytest.fixture(scope="session")
def groupements_csv(groupement_rows: list[dict[str, str]]) -> bytes:
    """The groupements file: Latin-1, ``;``-separated, one row per EPCI."""
    return to_csv(groupement_rows)


@pytest.fixture(scope="session")
def commune_list_rows() -> list[dict[str, str]]:
    return generated_commune_list(cog_communes())
