"""French labels of the keys of the breakdown indicators, published with the catalogue
(``GET /v1/indicators/catalogue``: ``breakdown_labels``), so that a front end names every figure the
way the report does without a vocabulary of its own."""

from __future__ import annotations

from ti_shared.geo import REGIONS
from ti_shared.vocabulary import AXIS_LABELS, STATUS_LABELS, THEME_LABELS

OBJECTIVE_LABELS: dict[str, str] = {
    "climate_mitigation": "Atténuation du changement climatique",
    "climate_adaptation": "Adaptation au changement climatique",
    "water": "Ressources aquatiques et marines",
    "circular_economy": "Économie circulaire",
    "pollution": "Prévention de la pollution",
    "biodiversity": "Biodiversité et écosystèmes",
}
VALUE_CHAIN_LABELS: dict[str, str] = {
    "economie_circulaire": "Économie circulaire, recyclage, réemploi",
    "relocalisation": "Relocalisation de biens de consommation courants",
    "bioeconomie": "Bioéconomie et produits biosourcés",
    "mobilites_durables": "Nouvelles mobilités durables",
    "agroalimentaire": "Filières agroalimentaires durables",
    "autre": "Autres chaînes de valeur",
}
MATURITY_LABELS: dict[str, str] = {
    "ready": "Prêts dès début 2025",
    "short_term": "Disponibles à court terme",
    "before_2030": "Prêts avant 2030",
}
PROGRAMME_LABELS: dict[str, str] = {
    "fonds_vert_ti_te": "Fonds vert « Territoires d'industrie en transition écologique »",
    "rebond_industriel": "Rebond industriel (France 2030)",
    "ingenierie_anct": "Ingénierie de l'ANCT",
    "ingenierie_rebond": "Ingénierie des missions Rebond industriel",
    "cofinancement_chef_projet": "Cofinancement des chefs de projet",
    "fabriques_prospectives": "Fabriques prospectives",
}
#: the figures of each programme in ``grants.by_programme``
PROGRAMME_FIGURE_LABELS: dict[str, str] = {
    "count": "Projets (subventions engagées)",
    "amount_eur": "Montant des subventions",
    "investment_eur": "Investissement industriel",
    "jobs_forecast": "Emplois prévus",
    "jobs_conditional": "Emplois conditionnés à l'aide",
    "territory_count": "Territoires lauréats",
    "departement_count": "Départements lauréats",
    "contribution_share": "Part des projets contribuant à chaque objectif",
    "value_chain_share": "Part des projets par filière",
}

BREAKDOWN_LABELS: dict[str, dict[str, str]] = {
    "actions.by_axis": AXIS_LABELS,
    "actions.by_axis_share": AXIS_LABELS,
    "actions.by_status": STATUS_LABELS,
    "actions.by_status_share": STATUS_LABELS,
    "actions.by_theme": THEME_LABELS,
    "actions.by_region_status": {**REGIONS, **STATUS_LABELS},
    "grants.by_programme": {**PROGRAMME_LABELS, **PROGRAMME_FIGURE_LABELS, **OBJECTIVE_LABELS, **VALUE_CHAIN_LABELS},
    "sites.by_maturity": MATURITY_LABELS,
}
