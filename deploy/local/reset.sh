#!/usr/bin/env bash
# A fresh platform: drop and recreate the five databases, wipe Kafka's data (topics, consumer
# groups) and re-create the topics. Leaves PostgreSQL and Kafka running.
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ti_lock

t0="$(now_ms)"
"$TI_LOCAL_DIR/pg.sh" reset
"$TI_LOCAL_DIR/kafka.sh" reset
"$TI_LOCAL_DIR/up.sh" >/dev/null   # fast no-op start; rewrites var/local.env
echo "local infrastructure reset in $(since "$t0") s"
