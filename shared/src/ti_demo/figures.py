"""The figures of « Bilan à 1 an du temps II » (BILAN.md) the demo programme reproduces."""

from __future__ import annotations

from decimal import Decimal

from ti_shared.vocabulary import THEME_AXES

SEED = 2024

TERRITORIES = 183
EPCIS = 630
REGIONS = 18
PROJECT_LEADS_IN_POST = 162
PROJECT_LEADS_COFINANCED = 140
LAUNCH_COPIL_HELD = 146

ACTIONS = 2812
ACTIONS_AT_LAUNCH = 2429

#: printed shares (%) and the counts chosen so that count / 2812 rounds to them
AXIS_SHARES = {
    "competences_attractivite": 32,
    "transition_ecologique": 24,
    "foncier": 18,
    "innovation": 18,
    "autre": 8,
}
AXIS_COUNTS = {
    "competences_attractivite": 900,
    "transition_ecologique": 675,
    "foncier": 506,
    "innovation": 506,
    "autre": 225,
}
STATUS_SHARES = {
    "en_cours": 36,
    "amont": 20,
    "etude_prealable": 19,
    "realise": 13,
    "non_renseigne": 8,
    "en_pause": 4,
    "abandonne": 1,
}
#: the seven printed shares add up to 101 %, so each count sits a little under its share
STATUS_COUNTS = {
    "en_cours": 1005,
    "amont": 557,
    "etude_prealable": 528,
    "realise": 362,
    "non_renseigne": 221,
    "en_pause": 110,
    "abandonne": 29,
}
THEME_COUNTS = {
    "valorisation_industrie": 376,
    "nouvelles_formations": 256,
    "rh_marque_employeur": 236,
    "besoin_formation": 181,
    "aide_installation": 148,
    "transition_energetique": 343,
    "ecologie_industrielle_territoriale": 320,
    "gestion_eau": 68,
    "infrastructures_numeriques": 53,
    "usages_numeriques": 75,
    "tiers_lieux": 75,
    "ecosysteme_innovation_recherche": 282,
    "sites_cles_en_main": 134,
    "requalification_friche": 193,
    "optimisation_densification_fonciere": 357,
}
#: the axis whose actions carry each theme in the demo (the report's grouping)
THEME_AXIS = THEME_AXES

FONDS_VERT = "fonds_vert_ti_te"
FONDS_VERT_GRANTS = 163
FONDS_VERT_AMOUNT = Decimal("63000000.00")
FONDS_VERT_INVESTMENT = Decimal("776000000.00")
FONDS_VERT_TERRITORIES = 106
FONDS_VERT_DEPARTEMENTS = 77
FONDS_VERT_JOBS = 2600
FONDS_VERT_JOBS_CONDITIONAL = 1300
FONDS_VERT_CONTRIBUTION_SHARES = {"climate_mitigation": 78, "circular_economy": 66}
FONDS_VERT_CONTRIBUTION_COUNTS = {"climate_mitigation": 127, "circular_economy": 108}
FONDS_VERT_VALUE_CHAIN_SHARES = {"economie_circulaire": 55, "relocalisation": 22, "bioeconomie": 17}
FONDS_VERT_VALUE_CHAIN_COUNTS = {
    "economie_circulaire": 90,
    "relocalisation": 36,
    "bioeconomie": 28,
    "mobilites_durables": 4,
    "agroalimentaire": 3,
    "autre": 2,
}

REBOND = "rebond_industriel"
REBOND_AMOUNT = Decimal("39700000.00")
REBOND_TERRITORIES = 26
REBOND_MISSIONS = 15
INGENIERIE_ANCT = "ingenierie_anct"
INGENIERIE_ANCT_AMOUNT = Decimal("2000000.00")
COFINANCEMENT = "cofinancement_chef_projet"
#: the State's co-financing of the project leads, 2023–2024 (one grant a year for each co-financed lead)
COFINANCEMENT_AMOUNT = Decimal("6700000.00")
INGENIERIE_REBOND = "ingenierie_rebond"
INGENIERIE_REBOND_AMOUNT = Decimal("2000000.00")

SITES = 55
SITES_AREA_TOTAL = Decimal("2942.00")
SITES_AREA_MEAN = 53
SITES_AREA_MEDIAN = Decimal("39.00")
SITES_BY_MATURITY = {"ready": 6, "short_term": 25, "before_2030": 24}
SITES_LAND_RECYCLING = 30
SITES_LAND_RECYCLING_AREA_MIN = Decimal("1000")
#: 88 % of 55 is 48.4: no whole number of sites gives 88 %; 48 (87.3 %) is the nearest
SITES_WORKSHOP_HELD = 48
SITES_WORKSHOP_SHARE_PRINTED = 88
SITES_ROADMAPS = 30
SITES_LABELLED_ON = "2024-04-15"

TERRITORIES_LABELLED_ON = "2023-11-09"
LAUNCH_AS_OF = "2023-11-30"
REPORT_AS_OF = "2024-11-30"


def share_rounds_to(count: int, total: int, percent: int) -> bool:
    """Whether ``count / total`` prints as ``percent`` % (rounded to the nearest whole)."""
    return total > 0 and round(100 * count / total) == percent
