#!/usr/bin/env bash
# Stop what up.sh started: Kafka (by its pid file), then PostgreSQL (pg_ctl stop -m fast).
# Data is kept; use reset.sh for a fresh platform.
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ti_lock

"$TI_LOCAL_DIR/kafka.sh" stop
"$TI_LOCAL_DIR/pg.sh" stop
