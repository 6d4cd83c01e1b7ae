from __future__ import annotations

from territory_registry.main import create_app


def test_every_endpoint_is_documented_with_summary_models_and_problems() -> None:
    schema = create_app().openapi()
    operations = {(m.upper(), p): op for p, ops in schema["paths"].items() for m, op in ops.items()}
    assert set(operations) == {
        ("GET", "/v1/regions"),
        ("GET", "/v1/departements"),
        ("PUT", "/v1/territories/{territory_id}"),
        ("GET", "/v1/territories"),
        ("GET", "/v1/territories/{territory_id}"),
        ("GET", "/v1/territories/{territory_id}/history"),
        ("POST", "/v1/territories/imports"),
    }
    for key, op in operations.items():
        assert op.get("summary"), key
        assert "schema" in op["responses"]["200"]["content"]["application/json"], key
    put = operations[("PUT", "/v1/territories/{territory_id}")]
    assert {"201", "401", "403", "412", "415", "422"} <= set(put["responses"])
    assert put["requestBody"]["content"]["application/json"]["examples"]["territory"]["value"]["region_code"] == "84"
    imports = operations[("POST", "/v1/territories/imports")]
    assert {"text/csv", "multipart/form-data"} <= set(imports["requestBody"]["content"])
    assert "examples" in imports["requestBody"]["content"]["text/csv"]
    assert "application/problem+json" in imports["responses"]["422"]["content"]
