"""The pytest plugin (registered through the ``pytest11`` entry point when ti-testkit is installed).

Fixtures:
- ``ti_platform``: the embedded platform started in this process on a free port, with a throw-away data
  directory; a fresh one per test by default (ini ``ti_platform_scope = module`` or ``session`` shares it).
- ``ti_remote_platform``: a platform already running, given by ``--ti-url`` (and ``--ti-service-url
  NAME=URL``, ``--ti-kafka HOST:PORT``, ``--ti-topic-prefix``, ``--ti-jwt-secret``, or the environment
  variables ``TI_TESTKIT_URL``, ``TI_TESTKIT_KAFKA``, ``TI_TOPIC_PREFIX``, ``TI_JWT_SECRET``); the test is
  skipped when no URL is given.
- ``ti_stream``: a factory of reference streams (``ti_stream(seed=1, size="small")`` → list of events).

Nothing heavy is imported until a fixture is used.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ti_testkit.platform import Platform

SCOPES = ("function", "class", "module", "package", "session")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ti-testkit", "Territoires d'industrie platform (ti-testkit)")
    group.addoption("--ti-url", default=None, help="Base URL of a running platform for ti_remote_platform (env TI_TESTKIT_URL)")
    group.addoption(
        "--ti-service-url", action="append", default=[], metavar="NAME=URL",
        help="URL of one service when they do not share the base URL (repeatable), e.g. reporting=http://127.0.0.1:8005",
    )
    group.addoption("--ti-kafka", default=None, help="Kafka bootstrap of that platform, for replays (env TI_TESTKIT_KAFKA)")
    group.addoption("--ti-topic-prefix", default=None, help="Topic prefix of that platform (env TI_TOPIC_PREFIX; default none)")
    group.addoption("--ti-jwt-secret", default=None, help="Secret its tokens are signed with (env TI_JWT_SECRET)")
    parser.addini("ti_platform_scope", "Scope of the ti_platform fixture (function, module, session…)", default="function")


def _platform_scope(fixture_name: str, config: pytest.Config) -> Any:
    scope = str(config.getini("ti_platform_scope") or "function")
    if scope not in SCOPES:
        raise pytest.UsageError(f"ti_platform_scope = {scope!r}: one of {', '.join(SCOPES)}")
    return scope


@pytest.fixture(scope=_platform_scope)
def ti_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The embedded platform, started for the test (seconds; no PostgreSQL or Kafka)."""
    from ti_testkit.embedded import start_embedded

    platform = start_embedded(tmp_path_factory.mktemp("ti-platform"))
    try:
        yield platform
    finally:
        platform.close()


@pytest.fixture(scope="session")
def ti_remote_platform(pytestconfig: pytest.Config) -> Iterator[Platform]:
    """The running platform given by ``--ti-url`` (skips the test when there is none)."""
    from ti_testkit.platform import connect

    url = pytestconfig.getoption("ti_url") or os.environ.get("TI_TESTKIT_URL")
    if not url:
        pytest.skip("no running platform given (--ti-url or TI_TESTKIT_URL)")
    services = {}
    for item in pytestconfig.getoption("ti_service_url"):
        name, sep, value = item.partition("=")
        if not sep:
            raise pytest.UsageError(f"--ti-service-url {item!r}: NAME=URL, e.g. reporting=http://127.0.0.1:8005")
        services[name.strip()] = value.strip()
    platform = connect(
        url,
        services=services,
        kafka=pytestconfig.getoption("ti_kafka") or os.environ.get("TI_TESTKIT_KAFKA"),
        topic_prefix=pytestconfig.getoption("ti_topic_prefix") or os.environ.get("TI_TOPIC_PREFIX", ""),
        jwt_secret=pytestconfig.getoption("ti_jwt_secret"),
    )
    try:
        yield platform
    finally:
        platform.close()


@pytest.fixture
def ti_stream() -> Callable[..., list[dict[str, Any]]]:
    """``ti_stream(seed=1, size="small", defects=True)``: a reference stream, as ``ti streams generate``."""
    from ti_testkit.streams import reference_stream

    return reference_stream


def pytest_report_header(config: pytest.Config) -> str | None:
    url = config.getoption("ti_url") or os.environ.get("TI_TESTKIT_URL")
    return f"ti-testkit: remote platform {url}" if url else None

