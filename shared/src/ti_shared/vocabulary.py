"""The contract's vocabularies (CONTRACT §4), declared once: codes, their order, and French labels."""

from __future__ import annotations

from typing import Literal, get_args

Axis = Literal["competences_attractivite", "foncier", "innovation", "transition_ecologique", "autre"]
Theme = Literal[
    "valorisation_industrie",
    "nouvelles_formations",
    "rh_marque_employeur",
    "besoin_formation",
    "aide_installation",
    "transition_energetique",
    "ecologie_industrielle_territoriale",
    "gestion_eau",
    "infrastructures_numeriques",
    "usages_numeriques",
    "tiers_lieux",
    "ecosysteme_innovation_recherche",
    "sites_cles_en_main",
    "requalification_friche",
    "optimisation_densification_fonciere",
]
ActionStatus = Literal["amont", "etude_prealable", "en_cours", "en_pause", "realise", "abandonne", "non_renseigne"]

AXES: tuple[str, ...] = get_args(Axis)
THEMES: tuple[str, ...] = get_args(Theme)
ACTION_STATUSES: tuple[str, ...] = get_args(ActionStatus)

AXIS_LABELS: dict[str, str] = {
    "competences_attractivite": "Compétences et attractivité",
    "foncier": "Foncier",
    "innovation": "Innovation",
    "transition_ecologique": "Transition écologique",
    "autre": "Autre (hors des quatre axes)",
}
THEME_LABELS: dict[str, str] = {
    "valorisation_industrie": "Valorisation de l'industrie",
    "nouvelles_formations": "Nouvelles formations",
    "rh_marque_employeur": "RH / marque employeur",
    "besoin_formation": "Besoin de formation",
    "aide_installation": "Aide à l'installation",
    "transition_energetique": "Transition énergétique",
    "ecologie_industrielle_territoriale": "Écologie industrielle et territoriale",
    "gestion_eau": "Gestion de l'eau",
    "infrastructures_numeriques": "Infrastructures numériques",
    "usages_numeriques": "Usages numériques",
    "tiers_lieux": "Tiers-lieux",
    "ecosysteme_innovation_recherche": "Écosystème d'innovation et recherche",
    "sites_cles_en_main": "Sites clés en main",
    "requalification_friche": "Requalification de friche",
    "optimisation_densification_fonciere": "Optimisation / densification foncière",
}
#: the axis under which the national report groups each theme (an action may still carry any theme)
THEME_AXES: dict[str, str] = {
    "valorisation_industrie": "competences_attractivite",
    "nouvelles_formations": "competences_attractivite",
    "rh_marque_employeur": "competences_attractivite",
    "besoin_formation": "competences_attractivite",
    "aide_installation": "competences_attractivite",
    "transition_energetique": "transition_ecologique",
    "ecologie_industrielle_territoriale": "transition_ecologique",
    "gestion_eau": "transition_ecologique",
    "infrastructures_numeriques": "innovation",
    "usages_numeriques": "innovation",
    "tiers_lieux": "innovation",
    "ecosysteme_innovation_recherche": "innovation",
    "sites_cles_en_main": "foncier",
    "requalification_friche": "foncier",
    "optimisation_densification_fonciere": "foncier",
}
STATUS_LABELS: dict[str, str] = {
    "amont": "À initier (amont)",
    "etude_prealable": "Étude préalable",
    "en_cours": "En cours",
    "en_pause": "En pause / à débloquer",
    "realise": "Réalisé",
    "abandonne": "Abandonné",
    "non_renseigne": "Non renseigné",
}

TerritoryStatus = Literal["active", "withdrawn"]
Objective = Literal["climate_mitigation", "climate_adaptation", "water", "circular_economy", "pollution", "biodiversity"]
ValueChain = Literal["economie_circulaire", "relocalisation", "bioeconomie", "mobilites_durables", "agroalimentaire", "autre"]
BeneficiaryKind = Literal["entreprise", "collectivite", "association", "etablissement_public"]
GrantStatus = Literal["committed", "cancelled"]
Maturity = Literal["ready", "short_term", "before_2030"]
SiteStatus = Literal["labelled", "withdrawn"]

OBJECTIVES: tuple[str, ...] = get_args(Objective)
VALUE_CHAINS: tuple[str, ...] = get_args(ValueChain)
BENEFICIARY_KINDS: tuple[str, ...] = get_args(BeneficiaryKind)
MATURITIES: tuple[str, ...] = get_args(Maturity)

#: the default programmes and the operators that run them (funding-ledger seeds them as data)
DEFAULT_PROGRAMMES: dict[str, tuple[str, ...]] = {
    "fonds_vert_ti_te": ("ADEME",),
    "rebond_industriel": ("BDT", "BPI"),
    "ingenierie_anct": ("ANCT",),
    "ingenierie_rebond": ("BDT", "ANCT"),
    "cofinancement_chef_projet": ("ANCT",),
    "fabriques_prospectives": ("ANCT", "BDT"),
}
