"""The catalogue of indicators (CONTRACT §6): code, French label, unit, definition, breakdown keys.

What each one is computed from is in ``reporting.engine`` (one entry per code, checked to match).
"""

from __future__ import annotations

from dataclasses import dataclass

from ti_shared.geo import REGIONS
from ti_shared.vocabulary import ACTION_STATUSES, AXES, MATURITIES, THEMES


@dataclass(frozen=True)
class IndicatorDefinition:
    code: str
    label: str
    unit: str
    definition: str
    breakdown: tuple[str, ...] = ()


_PROGRAMME_KEYS = (
    "count", "amount_eur", "investment_eur", "jobs_forecast", "jobs_conditional", "territory_count",
    "departement_count", "contribution_share", "value_chain_share",
)

CATALOGUE: tuple[IndicatorDefinition, ...] = (
    IndicatorDefinition("territories.count", "Territoires d'industrie labellisés", "territoires",
                        "Nombre de territoires au statut « active »."),
    IndicatorDefinition("territories.epci_count", "Intercommunalités (EPCI) couvertes", "EPCI",
                        "Nombre de SIREN d'EPCI distincts parmi les territoires actifs."),
    IndicatorDefinition("territories.region_count", "Régions couvertes", "régions",
                        "Nombre de codes de région distincts parmi les territoires actifs."),
    IndicatorDefinition("territories.project_leads_in_post", "Chefs de projet en poste", "territoires",
                        "Territoires actifs dont le chef de projet est en poste."),
    IndicatorDefinition("territories.project_leads_cofinanced", "Chefs de projet cofinancés par l'État", "territoires",
                        "Territoires actifs dont le poste de chef de projet est cofinancé."),
    IndicatorDefinition("territories.launch_copil_held", "COPIL de lancement tenus", "territoires",
                        "Territoires actifs ayant une date de comité de pilotage de lancement."),
    IndicatorDefinition("actions.count", "Actions recensées", "actions",
                        "Actions des plans d'action, hors actions supprimées."),
    IndicatorDefinition("actions.by_axis", "Actions par axe", "actions",
                        "Nombre d'actions par axe du programme.", AXES),
    IndicatorDefinition("actions.by_status", "Actions par état d'avancement", "actions",
                        "Nombre d'actions par état d'avancement.", ACTION_STATUSES),
    IndicatorDefinition("actions.by_theme", "Actions par thématique", "actions",
                        "Nombre d'actions portant chaque thématique (une action compte une fois par thématique).",
                        THEMES),
    IndicatorDefinition("actions.by_axis_share", "Répartition des actions par axe", "part (0–1)",
                        "Actions de l'axe / actions recensées, arrondi à 6 décimales ; null sans action.", AXES),
    IndicatorDefinition("actions.by_status_share", "Répartition des actions par état d'avancement", "part (0–1)",
                        "Actions à cet état / actions recensées, arrondi à 6 décimales ; null sans action.",
                        ACTION_STATUSES),
    IndicatorDefinition("actions.by_region_status", "Avancement des actions par région", "actions",
                        "Périmètre national seulement : nombre d'actions par région (celle de leur territoire) et par état.",
                        tuple(f"{r}.{s}" for r in REGIONS for s in ACTION_STATUSES)),
    IndicatorDefinition("grants.count", "Subventions engagées", "subventions",
                        "Subventions au statut « committed »."),
    IndicatorDefinition("grants.jobs_forecast", "Emplois prévus", "emplois",
                        "Somme des emplois prévus des subventions engagées (valeur absente comptée 0)."),
    IndicatorDefinition("grants.jobs_conditional", "Emplois conditionnés à l'aide", "emplois",
                        "Somme des emplois conditionnés à la subvention (valeur absente comptée 0)."),
    IndicatorDefinition("grants.amount_eur", "Montant des subventions engagées", "EUR",
                        "Somme des montants engagés."),
    IndicatorDefinition("grants.investment_eur", "Investissement industriel associé", "EUR",
                        "Somme des investissements déclarés des subventions engagées."),
    IndicatorDefinition("grants.disbursed_eur", "Montants versés", "EUR",
                        "Somme des montants déjà versés sur les subventions engagées."),
    IndicatorDefinition("grants.territory_count", "Territoires lauréats", "territoires",
                        "Nombre de territoires distincts (non nuls) des subventions engagées."),
    IndicatorDefinition("grants.departement_count", "Départements lauréats", "départements",
                        "Nombre de départements distincts (non nuls) des communes des subventions engagées."),
    IndicatorDefinition("grants.by_programme", "Subventions par programme", "mixte",
                        "Par programme : nombre, montants, emplois, territoires et départements distincts, "
                        "part des subventions contribuant à chaque objectif de la taxonomie européenne et "
                        "part par filière (arrondies à 6 décimales).",
                        tuple(f"<programme>.{k}" for k in _PROGRAMME_KEYS)),
    IndicatorDefinition("sites.count", "Sites clés en main labellisés", "sites", "Sites au statut « labelled »."),
    IndicatorDefinition("sites.land_recycling_count", "Sites en recyclage foncier", "sites",
                        "Sites labellisés relevant du recyclage foncier (friches) ; un site dont l'inventaire ne dit "
                        "pas s'il recycle du foncier (land_recycling null) n'est pas compté."),
    IndicatorDefinition("sites.roadmap_delivered_count", "Feuilles de route remises", "sites",
                        "Sites labellisés dont la feuille de route a été remise."),
    IndicatorDefinition("sites.area_ha_total", "Surface totale des sites", "ha", "Somme des surfaces des sites labellisés."),
    IndicatorDefinition("sites.area_ha_mean", "Surface moyenne des sites", "ha",
                        "Moyenne des surfaces, arrondie au centime d'hectare (au pair le plus proche) ; null sans site."),
    IndicatorDefinition("sites.area_ha_median", "Surface médiane des sites", "ha",
                        "Médiane des surfaces (moyenne des deux valeurs centrales pour un nombre pair), arrondie au "
                        "pair le plus proche à 2 décimales ; null sans site."),
    IndicatorDefinition("sites.land_recycling_area_ha", "Surface en recyclage foncier", "ha",
                        "Somme des surfaces des sites labellisés en recyclage foncier."),
    IndicatorDefinition("sites.by_maturity", "Sites par maturité", "sites",
                        "Nombre de sites labellisés par maturité.", MATURITIES),
    IndicatorDefinition("sites.workshop_held_share", "Part des ateliers d'accompagnement tenus", "part (0–1)",
                        "Sites labellisés dont l'atelier s'est tenu / sites labellisés ; null sans site."),
)

CODES: tuple[str, ...] = tuple(d.code for d in CATALOGUE)
UNITS: dict[str, str] = {d.code: d.unit for d in CATALOGUE}
