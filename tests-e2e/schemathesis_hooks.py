"""Schemathesis hooks of the end-to-end fuzzing (``SCHEMATHESIS_HOOKS``): bounds what a generated request
may make the platform wait for, so that the run's time stays the platform's work, not its waits."""

from __future__ import annotations

from typing import Any

import schemathesis

#: ``GET /v1/indicators?after=…`` waits for an event the fuzzer never wrote: at most this long
AFTER_WAIT_S = 0.1


@schemathesis.hook
def map_query(context: schemathesis.HookContext, query: dict[str, Any] | None) -> dict[str, Any] | None:
    operation = context.operation
    if query is None or operation is None or operation.path != "/v1/indicators" or "after" not in query:
        return query
    wait = query.get("wait")
    if isinstance(wait, (int, float)) and not isinstance(wait, bool) and 0 <= wait <= AFTER_WAIT_S:
        return query
    return {**query, "wait": AFTER_WAIT_S}  # an out-of-range or malformed wait is the 422 of other cases
