"""The layout check of ``make lint`` (docs/conventions.md): clean on the repository, and it finds what it is for."""

from __future__ import annotations

from pathlib import Path

import pytest
from ti_shared.devtools import check_layout
from ti_shared.devtools.check_layout import check, check_service

ROOT = Path(__file__).resolve().parents[2]


def test_the_repository_follows_its_layout() -> None:
    assert [str(v) for v in check(ROOT)] == []


def service_tree(root: Path, files: dict[str, str]) -> None:
    package = root / "services/site-catalog/src/site_catalog"
    package.mkdir(parents=True)
    for name in check_layout.REQUIRED_FILES:
        (package / name).write_text("")
    for name, text in files.items():
        (package / name).write_text(text)
    for name in check_layout.REQUIRED_TESTS:
        (root / "services/site-catalog/tests" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "services/site-catalog/tests" / name).write_text("")


def found(root: Path) -> set[tuple[str, str]]:
    return {(v.file, v.rule) for v in check_service(root, "site-catalog")}


def test_it_finds_queries_commits_impure_domains_and_wrong_layers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(check_layout, "SERVICE_LAYER", frozenset())  # the rules of any service, layered or not
    service_tree(
        tmp_path,
        {
            "domain.py": "import sqlalchemy as sa\nfrom site_catalog import repository\n",
            "api.py": "async def put(uow, session):\n    await session.execute(1)\n    await session.commit()\n    await uow.commit()\n",
            "schemas.py": "from ti_shared.replica import known_territories\n",
            "stray.py": "",
        },
    )
    assert found(tmp_path) == {
        ("domain.py", "import"),  # pure: no sqlalchemy; and the domain is below the repository
        ("domain.py", "query"),
        ("api.py", "query"),
        ("api.py", "commit"),  # session.commit(); uow.commit() is the allowed one
        ("schemas.py", "import"),
        ("schemas.py", "query"),
        ("stray.py", "layout"),
    }


def test_the_service_layer_rules_apply_once_a_service_is_switched_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(check_layout, "SERVICE_LAYER", frozenset())
    service_tree(
        tmp_path,
        {"api.py": "from site_catalog import repository\n", "domain.py": "from site_catalog.schemas import Change\ndef decide_write(): ...\n"},
    )
    assert found(tmp_path) == set()
    monkeypatch.setattr(check_layout, "SERVICE_LAYER", frozenset({"site-catalog"}))
    (tmp_path / "services/site-catalog/src/site_catalog/service.py").write_text("import fastapi\nasync def f(uow):\n    await uow.commit()\n")
    assert found(tmp_path) == {
        ("api.py", "import"),  # routes call the service, not the repository
        ("service.py", "import"),  # no HTTP in the service
        ("service.py", "commit"),  # the route commits
        ("unit/test_service.py", "layout"),
        ("unit/fakes.py", "layout"),
        ("unit/test_events.py", "layout"),
        ("domain.py", "vocabulary"),  # Decision (Change is re-exported from the schemas)
        ("events.py", "vocabulary"),
        ("repository.py", "vocabulary"),
    }


def test_a_repository_package_split_by_concern_stands_for_repository_py(tmp_path: Path) -> None:
    service_tree(tmp_path, {})
    before = found(tmp_path)
    package = tmp_path / "services/site-catalog/src/site_catalog"
    (package / "repository.py").unlink()
    (package / "repository").mkdir()
    (package / "repository/__init__.py").write_text("")
    (package / "repository/rows.py").write_text("import sqlalchemy as sa\nfrom site_catalog.repository import figures\nasync def f(s):\n    await s.execute(1)\n")
    (package / "repository/figures.py").write_text("from site_catalog import service\n")
    assert found(tmp_path) - before == {("repository/figures.py", "import")}  # queries allowed there; layers still apply
    assert before - found(tmp_path) == set()
