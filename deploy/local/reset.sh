#!/usr/bin/env bash
# A fresh platform: drop and recreate the five databases, wipe Kafka's data (topics, consumer
# groups) and re-create the topics. Leaves PostgreSQL and Kafka running.
# Refuses while services started by `make up` run (their databases would vanish under them):
# stop them first (`make down`, or `deploy/local/services.sh stop`), or pass --stop-services.
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

running="$(bash "$TI_LOCAL_DIR/services.sh" status 2>/dev/null | grep ': running' || true)"
if [ -n "$running" ]; then
  if [ "${1:-}" = "--stop-services" ]; then
    echo "reset: stopping the running services first:"; echo "$running"
    bash "$TI_LOCAL_DIR/services.sh" stop
  else
    echo "reset refused: these services are running on the databases it would drop:" >&2
    echo "$running" >&2
    echo "stop them first (make down, or deploy/local/services.sh stop), or run deploy/local/reset.sh --stop-services" >&2
    exit 1
  fi
fi
ti_lock

t0="$(now_ms)"
"$TI_LOCAL_DIR/pg.sh" reset
"$TI_LOCAL_DIR/kafka.sh" reset
"$TI_LOCAL_DIR/up.sh" >/dev/null   # fast no-op start; rewrites var/local.env
echo "local infrastructure reset in $(since "$t0") s"
