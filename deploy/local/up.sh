#!/usr/bin/env bash
# Start the local infrastructure (PostgreSQL + Kafka), create databases and topics, and write
# var/local.env. Idempotent: a second run finds everything up and returns in a few seconds.
#   deploy/local/up.sh            then:  . var/local.env
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ti_lock

t0="$(now_ms)"
"$TI_LOCAL_DIR/pg.sh" start
"$TI_LOCAL_DIR/kafka.sh" start

# Connection settings for the services and the tests.
env_file="$TI_VAR/local.env"
{
  echo "# Written by deploy/local/up.sh: source it (. var/local.env) before running the services."
  echo "export TI_PG_PORT=$TI_PG_PORT"
  echo "export TI_KAFKA_PORT=$TI_KAFKA_PORT"
  echo "export TI_KAFKA_BOOTSTRAP=$TI_HOST:$TI_KAFKA_PORT"
  for e in "${TI_SERVICE_DBS[@]}"; do
    echo "export TI_${e%%:*}_DATABASE_URL=postgresql+asyncpg://ti:ti@$TI_HOST:$TI_PG_PORT/${e#*:}"
  done
} >"$env_file.tmp"
mv "$env_file.tmp" "$env_file"

"$TI_LOCAL_DIR/status.sh" || true
echo "local infrastructure up in $(since "$t0") s; environment in $env_file"
