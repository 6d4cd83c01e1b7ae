"""ADEME's push code against the platform: what the export says is what the indicators count, a retried
push changes nothing, an amended decision changes the amount, a bad row is reported and not counted."""

from ademe_push.push import grants_from_export, push

HEADER = "Référence;Bénéficiaire;SIRET;Commune;Territoire;Objet;Montant;Investissement;Date de décision;Emplois prévus;Objectifs;Statut"
EXPORT = "\n".join([
    HEADER,
    "FV-2024-0101;Fonderie de l'Ain;732 829 320 00074;01053;ti-8401;Four électrique;1 200 000,00;4 800 000,00;12/06/2024;12;climate_mitigation|circular_economy;Engagé",
    "FV-2024-0102;Papeterie du Rhône;552 100 554 00047;69123;ti-8401;Récupération de chaleur;350 000,50;;03/07/2024;;climate_mitigation;Engagé",
    "FV-2024-0103;Verrerie du Var;443 061 841 00047;83137;ti-9301;Calcin recyclé;800 000,00;2 000 000,00;15/09/2024;8;circular_economy;Engagé",
    "FV-2024-0104;Ancien projet;732 829 320 00074;01053;ti-8401;Abandonné;90 000,00;;01/02/2024;;;Annulé",
]) + "\n"


def test_the_export_is_what_the_indicators_count(ti_platform):
    ti_platform.register_territory("ti-8401", "84")
    ti_platform.register_territory("ti-9301", "93")
    ademe = ti_platform.client("operator", operator="ADEME")

    report = push(ademe, grants_from_export(EXPORT))
    assert report.counts["created"] == 4 and not report.rejected

    auvergne = ti_platform.indicators("region:84")
    assert auvergne["grants.count"] == 2  # the cancelled decision does not count
    assert auvergne["grants.amount_eur"] == "1550000.50"
    assert auvergne["grants.investment_eur"] == "4800000.00"
    assert auvergne["grants.jobs_forecast"] == 12
    assert ti_platform.indicators("territory:ti-9301")["grants.by_programme"]["fonds_vert_ti_te"]["count"] == 1

    # the same push retried (same Idempotency-Key): the same report back, nothing counted twice
    again = push(ademe, grants_from_export(EXPORT))
    assert again.counts == report.counts
    ti_platform.wait_for()
    assert ti_platform.indicators("region:84") == auvergne


def test_an_amended_decision_and_a_bad_row(ti_platform):
    ademe = ti_platform.client("operator", operator="ADEME")
    before = ti_platform.indicators("national")
    amended = EXPORT.replace("1 200 000,00", "1 250 000,00")
    bad = amended + "FV-2024-0105;Sans SIRET valide;123;01053;ti-8401;Projet;10 000,00;;01/10/2024;;;Engagé\n"

    report = push(ademe, grants_from_export(bad))
    assert report.counts["updated"] == 1
    assert list(report.rejected) == ["FV-2024-0105"]

    after = ti_platform.indicators("national")
    assert after["grants.count"] == before["grants.count"]
    assert float(after["grants.amount_eur"]) - float(before["grants.amount_eur"]) == 50000.0
