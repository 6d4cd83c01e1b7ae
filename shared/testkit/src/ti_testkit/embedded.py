"""The embedded platform (the five services in one ASGI app, SQLite files and the local durable log) served
by uvicorn on a free loopback port, in a thread of the calling process: a few seconds to start, nothing
to install besides the platform's packages, everything under one throw-away directory."""

from __future__ import annotations

import logging
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ti_shared.endpoints import Endpoints
from ti_shared.settings import PlatformSettings

from ti_testkit.platform import LoopThread, Platform


class ServedPlatform(Platform):
    """A platform this process serves (the embedded one, or a service on the settings given); ``close()``
    ends it. The embedded platform keeps its data in ``var_dir``."""

    def __init__(self, endpoints: Endpoints, settings: PlatformSettings, runner: LoopThread, server: Any, serving: Any) -> None:
        super().__init__(endpoints, settings, runner=runner, name="embedded" if settings.bus == "local" else "served")
        self._server = server
        self._serving = serving

    @property
    def var_dir(self) -> Path:
        return self.settings.var_dir

    @property
    def bus_path(self) -> Path:
        """The local durable log (``ti replay --bus local`` and ``ti conformance --bus-path`` append to it)."""
        return self.settings.bus_path

    def close(self) -> None:
        self._server.should_exit = True
        try:
            self._serving.result(30)
        finally:
            super().close()

    stop = close


#: the embedded platform is one such platform
EmbeddedPlatform = ServedPlatform


def start_embedded(var_dir: Path, *, jwt_secret: str | None = None, host: str = "127.0.0.1", timeout_s: float = 60.0) -> ServedPlatform:
    """Start the embedded platform on a free port of ``host`` with its data under ``var_dir``; tokens are
    signed with ``jwt_secret`` (a random one by default). The environment's database URLs and bus
    settings are not used: nothing outside ``var_dir`` is touched."""
    from ti_shared.embedded import create_embedded_app

    var_dir.mkdir(parents=True, exist_ok=True)
    settings = PlatformSettings(
        env="test",
        var_dir=var_dir,
        bus="local",
        local_bus_path=var_dir / "bus.db",
        topic_prefix="",
        jwt_secret=jwt_secret or secrets.token_urlsafe(32),
        jwt_jwks_url=None,
        relay_idle_seconds=0.05,
        migrate_on_start=True,
        log_level="WARNING",
    )
    for name in ("alembic", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return serve(lambda: create_embedded_app(settings), settings, host=host, timeout_s=timeout_s)


def serve(
    make_app: Callable[[], Any], settings: PlatformSettings, *, host: str = "127.0.0.1", timeout_s: float = 60.0
) -> ServedPlatform:
    """Serve the ASGI app ``make_app()`` (built on the serving loop) with uvicorn on a free port of ``host``,
    in a thread of this process; ``settings`` are the platform's (tokens, bus)."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    runner = LoopThread("ti-testkit-server")

    async def _create() -> Any:
        return make_app()

    try:
        app = runner.call(_create())
        config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5, access_log=False)
        server = uvicorn.Server(config)
        serving = runner.submit(server.serve(sockets=[sock]))
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if serving.done():
                serving.result()
                raise RuntimeError("the platform stopped while starting (see the log above)")
            if time.monotonic() > deadline:
                server.should_exit = True
                raise TimeoutError(f"the platform did not start in {timeout_s:.0f} s")
            time.sleep(0.02)
    except BaseException:
        sock.close()
        runner.close()
        raise
    return ServedPlatform(Endpoints.single(f"http://{host}:{port}"), settings, runner, server, serving)
