def test_my_grant_counts_in_its_region(ti_platform):
    ti_platform.register_territory("ti-8401", region_code="84")
    ademe = ti_platform.client("operator", operator="ADEME")
    grant = {
        "programme": "fonds_vert_ti_te", "territory_id": "ti-8401", "commune_insee": "01053",
        "beneficiary": {"name": "AEROMETAL", "siret": "73282932000074", "kind": "entreprise"},
        "object": "Recyclage de métaux stratégiques", "amount_eur": "1500000.00",
        "decision_date": "2024-06-12", "contributions": ["circular_economy"],
    }
    response = ademe.put("/v1/grants/ADEME/FV-2024-0042", json=grant)
    assert response.status_code == 201, response.text

    region = ti_platform.indicators("region:84")  # waits until the write is reflected
    assert region["grants.count"] == 1
    assert region["grants.amount_eur"] == "1500000.00"
    assert region["grants.by_programme"]["fonds_vert_ti_te"]["contribution_share"]["circular_economy"] == 1.0
