"""The reporting service without its ASGI fast path (``reporting.fastpath.CachedIndicators``): every
cached read goes through routing and dependency resolution, to measure what the fast path is worth."""

from __future__ import annotations

import dataclasses

from fastapi import FastAPI
from reporting.fastpath import CachedIndicators
from reporting.main import SPEC
from ti_shared.app import create_service_app


def create_app() -> FastAPI:
    return create_service_app(dataclasses.replace(SPEC, middleware=[m for m in SPEC.middleware if m is not CachedIndicators]))
