"""Static checks of the production deployment (docker-compose.yml, deploy/Dockerfile, deploy/nginx.conf).

No Docker needed: the files are parsed (PyYAML + stdlib) and checked against the platform's contract
(CONTRACT.md section 1: five services, their ports and their path prefixes behind one base URL).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
NGINX = ROOT / "deploy" / "nginx.conf"

# CONTRACT.md section 1: service -> (port, path prefixes it serves).
CONTRACT: dict[str, tuple[int, tuple[str, ...]]] = {
    "territory-registry": (8001, ("/v1/regions", "/v1/departements", "/v1/territories")),
    "action-tracker": (8002, ("/v1/actions",)),
    "funding-ledger": (8003, ("/v1/operators", "/v1/programmes", "/v1/grants", "/v1/grant-batches")),
    "site-catalog": (8004, ("/v1/sites",)),
    "reporting": (8005, ("/v1/indicators", "/dashboard")),
}
TOPICS = ("ti.territories", "ti.actions", "ti.grants", "ti.sites", "ti.dead-letters")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    svcs = compose["services"]
    assert isinstance(svcs, dict)
    return svcs


def _build_args(build: dict[str, Any]) -> dict[str, str]:
    args = build.get("args", {})
    if isinstance(args, list):  # ["KEY=value", ...] form
        return dict(str(a).split("=", 1) for a in args)
    return {str(k): str(v) for k, v in args.items()}


def _environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment", {})
    if isinstance(env, list):
        return dict(str(e).split("=", 1) for e in env)
    return {str(k): str(v) for k, v in env.items()}


def _healthcheck_text(svc: dict[str, Any]) -> str:
    test = svc["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else str(test)


def test_every_component_is_declared(services: dict[str, dict[str, Any]]) -> None:
    expected = {*CONTRACT, "kafka", "postgres", "proxy"}
    assert expected <= services.keys(), f"missing: {sorted(expected - services.keys())}"


def test_infrastructure_images(services: dict[str, dict[str, Any]]) -> None:
    assert services["kafka"]["image"].startswith("apache/kafka:4.1")
    assert services["postgres"]["image"].startswith("postgres:15")
    env = _environment(services["kafka"])
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_LOG_RETENTION_MS"] == "-1"  # topics keep history


def test_data_lives_in_volumes(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    named = set(compose.get("volumes") or {})
    for name, target in (("kafka", "/var/lib/kafka/data"), ("postgres", "/var/lib/postgresql/data")):
        mounts = [str(v) for v in services[name].get("volumes", [])]
        volume = next((m.split(":")[0] for m in mounts if m.split(":")[1] == target), None)
        assert volume in named, f"{name}: {target} must be a named volume, got {mounts}"


def test_postgres_creates_one_database_per_service(services: dict[str, dict[str, Any]]) -> None:
    mounts = [str(v) for v in services["postgres"]["volumes"]]
    init = [m for m in mounts if "/docker-entrypoint-initdb.d/" in m]
    assert init, "deploy/postgres/init.sql is not mounted into docker-entrypoint-initdb.d"
    sql = (ROOT / init[0].split(":")[0]).read_text(encoding="utf-8")
    for name in CONTRACT:
        assert re.search(rf"CREATE DATABASE ti_{name.replace('-', '_')}\b", sql), name


def test_topics_are_created_by_a_one_shot_service(services: dict[str, dict[str, Any]]) -> None:
    creators = [
        (name, svc)
        for name, svc in services.items()
        if svc.get("restart") == "no" and "kafka-topics" in str(svc.get("command", "")) + str(svc.get("entrypoint", ""))
    ]
    assert len(creators) == 1, "expected one one-shot topic-creation service"
    name, svc = creators[0]
    text = str(svc["command"])
    for topic in TOPICS:
        assert topic in text
    for app in CONTRACT:
        assert services[app]["depends_on"][name]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("name", list(CONTRACT))
def test_service_build(services: dict[str, dict[str, Any]], name: str) -> None:
    svc = services[name]
    build = svc["build"]
    context = ROOT / build.get("context", ".")
    dockerfile = context / build.get("dockerfile", "Dockerfile")
    assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
    assert "ARG SERVICE" in dockerfile.read_text(encoding="utf-8")
    service_arg = _build_args(build)["SERVICE"]
    assert service_arg == name
    assert (ROOT / "services" / service_arg).is_dir(), f"services/{service_arg}/ does not exist"


@pytest.mark.parametrize("name", list(CONTRACT))
def test_service_runtime(services: dict[str, dict[str, Any]], name: str) -> None:
    svc = services[name]
    port = CONTRACT[name][0]
    assert "/readyz" in _healthcheck_text(svc)
    assert f":{port}/readyz" in _healthcheck_text(svc)
    published = [str(p) for p in svc.get("ports", [])]
    assert any(p.endswith(f"{port}:{port}") for p in published), f"{name}: {published}"
    assert str(_build_args(svc["build"]).get("PORT", port)) == str(port)
    env = _environment(svc)
    prefix = "TI_" + name.upper().replace("-", "_")
    assert env[f"{prefix}_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert env[f"{prefix}_DATABASE_URL"].endswith(f"/ti_{name.replace('-', '_')}")
    assert env["TI_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert env["TI_ENV"] == "production"
    assert env["TI_BUS"] == "kafka"
    assert "TI_JWT_JWKS_URL" in env
    assert {"postgres"} <= set(svc["depends_on"])


@pytest.mark.parametrize("name", list(CONTRACT))
def test_each_service_has_its_outbox_relay(services: dict[str, dict[str, Any]], name: str) -> None:
    """``ti relay <service>`` in a container of its own, on the service's image and database (decision 17)."""
    relay, svc = services[f"{name}-relay"], services[name]
    assert relay["command"] == ["ti", "relay", name]
    assert relay["image"] == svc["image"]
    prefix = "TI_" + name.upper().replace("-", "_")
    assert _environment(relay)[f"{prefix}_DATABASE_URL"] == _environment(svc)[f"{prefix}_DATABASE_URL"]
    assert _environment(relay)["TI_RELAY"] == _environment(svc)["TI_RELAY"] == "process"
    assert "ports" not in relay and {"postgres", "kafka-topics", name} <= set(relay["depends_on"])


def _nginx_routes(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """(upstream name -> "host:port", location prefix -> upstream name)."""
    text = re.sub(r"#[^\n]*", "", text)
    upstreams = {m[0]: m[1] for m in re.findall(r"upstream\s+(\S+)\s*\{[^}]*?server\s+([^\s;]+)", text)}
    locations = {
        m[0]: m[1]
        for m in re.findall(r"location\s+(?:\^~\s+)?(/[^\s{]*)\s*\{[^}]*?proxy_pass\s+https?://([^/;\s]+)", text)
    }
    return upstreams, locations


def test_proxy_routes_every_prefix_to_its_service(services: dict[str, dict[str, Any]]) -> None:
    proxy = services["proxy"]
    mounts = [str(v) for v in proxy["volumes"]]
    assert any(m.split(":")[0] in ("./deploy/nginx.conf", "deploy/nginx.conf") for m in mounts), mounts
    assert any(str(p).endswith("8000:8000") for p in proxy["ports"])
    upstreams, locations = _nginx_routes(NGINX.read_text(encoding="utf-8"))
    for name, (port, prefixes) in CONTRACT.items():
        for prefix in prefixes:
            assert prefix in locations, f"{prefix} is not routed by deploy/nginx.conf"
            assert upstreams[locations[prefix]] == f"{name}:{port}", f"{prefix} goes to {upstreams[locations[prefix]]}"
        assert name in services


def test_contract_table_matches_this_test() -> None:
    """When the shared CONTRACT.md is beside the repository, its section 1 table is the one above."""
    contract = next((p for p in (ROOT.parent / "shared" / "CONTRACT.md", ROOT / "CONTRACT.md") if p.is_file()), None)
    if contract is None:
        pytest.skip("CONTRACT.md not found beside the repository")
    rows = re.findall(
        r"^\|\s*([a-z-]+)\s*\|[^|]*\|\s*(\d{4})\s*\|([^|\n]*)\|", contract.read_text(encoding="utf-8"), re.M
    )
    table = {name: (int(port), tuple(re.findall(r"`(/[^`]+)`", paths))) for name, port, paths in rows}
    assert table == CONTRACT


def test_the_proxy_serves_the_single_base_urls_openapi_document(services: dict[str, dict[str, Any]]) -> None:
    """``/openapi.json`` behind the proxy is the platform's document, written into the proxy's image by
    ``ti openapi`` from the five services' sources; ``/docs`` and ``/redoc`` read it by a relative URL."""
    build = services["proxy"]["build"]
    dockerfile = (ROOT / build["dockerfile"]).read_text(encoding="utf-8")
    for name in CONTRACT:
        assert f"services/{name}" in dockerfile, f"{name} is not installed where the document is written"
    written = re.search(r"ti openapi --out (\S+)", dockerfile)
    assert written is not None
    copied = re.search(rf"COPY --from=\S+ {re.escape(written.group(1))}/platform\.json (\S+)", dockerfile)
    assert copied is not None, "the proxy's image does not get platform.json"
    conf = NGINX.read_text(encoding="utf-8")
    block = re.search(r"location = /openapi\.json \{([^}]*)\}", conf)
    assert block is not None, "deploy/nginx.conf does not serve /openapi.json"
    root = re.search(r"root\s+(\S+);", block.group(1))
    assert root is not None and copied.group(1) == root.group(1) + "/openapi.json"
    for page in ("/docs", "/redoc"):
        assert re.search(rf"location = {page}\s+\{{ proxy_pass http://\w+/{page[1:]}; \}}", conf), page
    assert re.search(r"location /docs/assets/\s+\{ proxy_pass http://\w+; \}", conf)
