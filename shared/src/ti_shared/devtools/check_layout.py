"""The written rules of docs/conventions.md that a machine can check, run by ``make lint``:

    python -m ti_shared.devtools.check_layout [ROOT]

1. **Layout**: every service has the same files (:data:`REQUIRED_FILES`, :data:`REQUIRED_TESTS`); any
   other module is declared in :data:`OTHER_MODULES`; the write services listed in
   :data:`SERVICE_LAYER` also have ``service.py``, its unit tests, and the shared vocabulary
   (:data:`VOCABULARY`).
2. **Imports**: each file imports only the layers below it (:data:`MAY_IMPORT`), and the pure ones
   no I/O (:data:`NO_IO`).
3. **No query outside** ``repository.py`` (or a ``repository/`` package, split by concern, in its
   place): nothing else builds SQL (``import sqlalchemy``), runs a statement (``.execute(…)``…) or
   calls ``ti_shared``'s query helpers.
4. **No commit outside the unit of work**: only the routes (``api.py``) commit, and only through
   ``uow.commit()`` or ``idem.commit(…)``; no module begins, rolls back or commits a session itself.

What does not hold yet is listed in :data:`ALLOWED` (service, file, rule): a short list the service
layer empties. An AST walk, no import of the code checked.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SERVICES = ("territory-registry", "action-tracker", "funding-ledger", "site-catalog", "reporting")
WRITE_SERVICES = SERVICES[:4]
#: the write services whose use cases are in service.py: the rules of the service layer apply to them
SERVICE_LAYER: frozenset[str] = frozenset({"action-tracker", "funding-ledger", "site-catalog", "territory-registry"})

REQUIRED_FILES = ("__init__.py", "tables.py", "schemas.py", "domain.py", "events.py", "repository.py", "api.py", "main.py")
OPTIONAL_FILES = ("cli.py",)
REQUIRED_TESTS = ("unit/test_domain.py", "integration/test_api.py", "integration/test_migrations.py")
SERVICE_LAYER_FILES = ("service.py",)
SERVICE_LAYER_TESTS = ("unit/test_service.py", "unit/fakes.py", "unit/test_events.py")
#: each service's other modules and their role: ``domain`` (pure rules beside domain.py), ``helper``
#: (pure readers and formats of files, between the domain and the service), ``handler`` (a consumer's
#: handler, a maintenance job or an ASGI layer: it may use the repository, like the service)
OTHER_MODULES: dict[str, dict[str, str]] = {
    "territory-registry": {"imports": "helper"},
    "action-tracker": {"plan_import": "helper"},
    "funding-ledger": {"batches": "helper", "scdl": "helper"},
    "site-catalog": {"imports": "helper"},
    "reporting": {
        "catalogue": "domain",
        "labels": "domain",
        "decoding": "domain",
        "engine": "domain",
        "freshness": "domain",
        "reads": "handler",
        "fastpath": "handler",
        "projection": "handler",
        "rebuild": "handler",
    },
}
#: names every service-layer service defines: module → names
VOCABULARY: dict[str, tuple[str, ...]] = {
    "domain": ("Change", "Decision", "decide_write"),
    "events": ("EVENTS", "EVENT_OF_CHANGE"),
    "repository": ("Repository",),
}

#: the roles of the service's own modules each role may import (main and cli may import any)
MAY_IMPORT: dict[str, frozenset[str]] = {
    "tables": frozenset(),
    "schemas": frozenset(),
    "domain": frozenset({"schemas", "domain"}),
    "events": frozenset({"schemas", "domain"}),
    "repository": frozenset({"tables", "schemas", "domain", "events", "repository"}),
    "helper": frozenset({"schemas", "domain", "events", "helper"}),
    "service": frozenset({"repository", "schemas", "domain", "events", "helper"}),
    "handler": frozenset({"repository", "schemas", "domain", "events", "helper", "handler"}),
    "api": frozenset({"service", "repository", "schemas", "domain", "events", "helper", "handler"}),
}
#: what a pure module may not import (first dotted parts, or whole ``ti_shared`` modules)
IO_PACKAGES = frozenset({"sqlalchemy", "fastapi", "starlette", "httpx", "aiokafka", "asyncpg", "aiosqlite"})
IO_SHARED = frozenset(
    f"ti_shared.{m}"
    for m in ("app", "db", "bus", "consumer", "outbox", "replica", "idempotency", "uploads", "http", "migrations",
              "embedded", "testing", "fakes", "cli", "settings", "ratelimit")
)
NO_IO = frozenset({"domain", "schemas", "events", "helper"})
#: statements are run in repository.py only
QUERY_METHODS = frozenset({"execute", "scalar", "scalars", "stream", "stream_scalars", "exec_driver_sql", "run_sync"})
QUERY_HELPERS = frozenset({"upsert", "in_values", "insert_rows", "lookup_chunks", "known_territories", "territory_ids_in_region"})
TRANSACTION_METHODS = frozenset({"commit", "rollback", "begin", "begin_nested", "flush"})
#: who may commit, in api.py
COMMITTERS = frozenset({"uow", "idem"})

#: (service, file or "-", rule) that does not hold yet; each entry says who empties it
ALLOWED: frozenset[tuple[str, str, str]] = frozenset(
    {
        # reporting's rebuild and start-up run transactions of their own, outside any request (the
        # reporting rework decides their unit of work); its route tests are test_indicators.py
        ("reporting", "rebuild.py", "commit"),
        ("reporting", "main.py", "commit"),
        ("reporting", "integration/test_api.py", "layout"),
    }
)


@dataclass(frozen=True, order=True)
class Violation:
    service: str
    file: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"services/{self.service}: {self.file}: [{self.rule}] {self.message}"


def module_dir(root: Path, service: str) -> Path:
    return root / "services" / service / "src" / service.replace("-", "_")


def check_service(root: Path, service: str) -> Iterator[Violation]:
    package = module_dir(root, service)
    layered = service in SERVICE_LAYER
    yield from _check_files(root, service, package, layered)
    for path in sorted(package.glob("*.py")):
        yield from _check_module(service, package.name, path, layered)
    for path in sorted((package / REPOSITORY_PACKAGE).glob("*.py")):  # its modules are the repository
        yield from _check_module(service, package.name, path, layered, stem="repository")


#: a repository split by concern: the package's modules are the repository (``repository.py``)
REPOSITORY_PACKAGE = "repository"


def _files(package: Path) -> set[str]:
    files = {p.name for p in package.glob("*.py")}
    if (package / REPOSITORY_PACKAGE / "__init__.py").is_file():
        files.add(f"{REPOSITORY_PACKAGE}.py")
    return files


def _check_files(root: Path, service: str, package: Path, layered: bool) -> Iterator[Violation]:
    files = _files(package)
    required = REQUIRED_FILES + (SERVICE_LAYER_FILES if layered else ())
    for name in required:
        if name not in files:
            yield Violation(service, name, "layout", "missing (every service has it: docs/conventions.md)")
    known = {*REQUIRED_FILES, *OPTIONAL_FILES, *SERVICE_LAYER_FILES, *(f"{m}.py" for m in OTHER_MODULES.get(service, ()))}
    for name in sorted(files - known):
        yield Violation(service, name, "layout", "a module the layout does not know: declare it in OTHER_MODULES")
    tests = root / "services" / service / "tests"
    for name in REQUIRED_TESTS + (SERVICE_LAYER_TESTS if layered else ()):
        if not (tests / name).is_file():
            yield Violation(service, name, "layout", "missing test file (tests/unit, tests/integration)")
    if layered:
        for module, names in VOCABULARY.items():
            defined = _top_level_names(package / f"{module}.py")
            for name in names:
                if name not in defined:
                    yield Violation(service, f"{module}.py", "vocabulary", f"defines no '{name}'")


def _top_level_names(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom):  # a name re-exported (``from .schemas import Change``) counts
            names |= {a.asname or a.name for a in node.names}
    return names


def _role(service: str, stem: str) -> str:
    return OTHER_MODULES.get(service, {}).get(stem, stem)


def _imports(tree: ast.Module) -> Iterator[tuple[ast.AST, str, list[str]]]:
    """(node, module, imported names) of every import, relative ones excluded."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node, node.module, [a.name for a in node.names]


def _check_module(service: str, package: str, path: Path, layered: bool, stem: str | None = None) -> Iterator[Violation]:
    name = path.name if stem is None else f"{path.parent.name}/{path.name}"
    stem = stem or path.stem
    role = _role(service, stem)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    own = {*REQUIRED_FILES, *OPTIONAL_FILES, *SERVICE_LAYER_FILES}
    for node, module, names in _imports(tree):
        line = getattr(node, "lineno", 0)
        top = module.split(".")[0]
        if top == package:
            allowed = MAY_IMPORT.get(role)
            for target in [module.split(".")[1]] if "." in module else names:
                target_role = _role(service, target)
                if allowed is not None and target_role not in allowed and f"{target}.py" in own | {f"{m}.py" for m in OTHER_MODULES.get(service, ())}:
                    yield Violation(service, name, "import", f"line {line}: {stem} may not import {target} (layers: docs/conventions.md)")
        if role in NO_IO and (top in IO_PACKAGES or module in IO_SHARED):
            yield Violation(service, name, "import", f"line {line}: {stem} is pure and may not import {module}")
        if role == "service" and top in ("fastapi", "starlette", "sqlalchemy"):
            yield Violation(service, name, "import", f"line {line}: service.py speaks neither HTTP nor SQL ({module})")
        own_targets = ([module.split(".")[1]] if "." in module else names) if top == package else []
        if layered and role == "api" and (top == "sqlalchemy" or {"repository", "tables"} & set(own_targets)):
            yield Violation(service, name, "import", f"line {line}: routes call the service, not {module}")
        if stem not in ("repository", "tables"):
            if top == "sqlalchemy" and module != "sqlalchemy.ext.asyncio":
                yield Violation(service, name, "query", f"line {line}: builds SQL ({module}): queries live in repository.py")
            if module.startswith("ti_shared.") and set(names) & QUERY_HELPERS:
                helpers = ", ".join(sorted(set(names) & QUERY_HELPERS))
                yield Violation(service, name, "query", f"line {line}: {helpers} is a query: call it from repository.py")
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        method, line = node.func.attr, node.lineno
        if method in QUERY_METHODS and stem != "repository":
            yield Violation(service, name, "query", f"line {line}: .{method}(…) runs a statement outside repository.py")
        if method in TRANSACTION_METHODS:
            receiver = node.func.value
            who = receiver.id if isinstance(receiver, ast.Name) else None
            if not (stem == "api" and method == "commit" and who in COMMITTERS):
                yield Violation(
                    service, name, "commit", f"line {line}: .{method}() — only the routes commit, with uow.commit() or idem.commit(…)"
                )


def check(root: Path) -> list[Violation]:
    """Every violation not in :data:`ALLOWED`, and every entry of ALLOWED that no longer happens."""
    found = sorted({v for s in SERVICES for v in check_service(root, s)})
    out = [v for v in found if (v.service, v.file, v.rule) not in ALLOWED and (v.service, "-", v.rule) not in ALLOWED]
    seen = {(v.service, v.file, v.rule) for v in found} | {(v.service, "-", v.rule) for v in found}
    for entry in sorted(ALLOWED - seen):
        out.append(Violation(entry[0], entry[1], entry[2], "allowed but no longer happens: remove it from ALLOWED"))
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path.cwd()
    violations = check(root)
    for v in violations:
        print(v)
    if violations:
        print(f"{len(violations)} layout violation(s): docs/conventions.md says why and how", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
