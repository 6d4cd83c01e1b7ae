#!/usr/bin/env bash
# Local PostgreSQL for the platform: one cluster under var/pg, TCP on 127.0.0.1:$TI_PG_PORT only,
# bootstrap superuser `ti` (password `ti`) and one database per service.
#
#   deploy/local/pg.sh start    install if needed, initdb once, start, create the databases
#   deploy/local/pg.sh stop     pg_ctl stop -m fast (only this cluster)
#   deploy/local/pg.sh status   running or not, port, memory
#   deploy/local/pg.sh reset    drop and recreate the per-service databases (starts PG if needed)
#   deploy/local/pg.sh psql DB  open psql on a database (default: postgres)
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PG_LINK="$TI_VAR/pg"
export PGPASSWORD=ti PGUSER=ti PGHOST="$TI_HOST" PGPORT="$TI_PG_PORT" PGCONNECT_TIMEOUT=5

# Run a command as the OS user that owns the cluster: `postgres` when we are root
# (PostgreSQL refuses to run as root), ourselves otherwise.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

newest_pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/pg_ctl" ]; then echo "$d"; fi
  done | sort -V | tail -n 1
}

# Locate the PostgreSQL binaries (/usr/lib/postgresql/<version>/bin), installing them if absent.
# Prefers the version the existing cluster was created with.
find_pg_bin() {
  local want="" d
  [ -r "$PG_LINK/data/PG_VERSION" ] && want="$(cat "$PG_LINK/data/PG_VERSION")"
  if [ -n "$want" ] && [ -x "/usr/lib/postgresql/$want/bin/pg_ctl" ]; then
    PG_BIN="/usr/lib/postgresql/$want/bin"; return 0
  fi
  d="$(newest_pg_bin)"
  if [ -z "$d" ]; then
    apt_install postgresql
    d="$(newest_pg_bin)"
  fi
  [ -n "$d" ] || die "pg_ctl not found under /usr/lib/postgresql/*/bin"
  PG_BIN="$d"
}

# Make var/pg usable by the cluster's OS user. When run as root in a tree that `postgres` cannot
# traverse (e.g. a clone under /root), var/pg becomes a symlink to a directory under /var/tmp.
prepare_dirs() {
  mkdir -p "$TI_VAR"
  if [ "$(id -u)" -ne 0 ]; then
    mkdir -p "$PG_LINK/data" "$PG_LINK/log"; chmod 700 "$PG_LINK/data"
  else
    id postgres >/dev/null 2>&1 || find_pg_bin   # the Debian package creates the user
    if [ ! -L "$PG_LINK" ]; then
      mkdir -p "$PG_LINK"
      chown postgres: "$PG_LINK"
      if ! runuser -u postgres -- test -w "$PG_LINK"; then
        local alt
        alt="/var/tmp/ti-local-pg-$(printf '%s' "$TI_VAR" | cksum | cut -d' ' -f1)"
        log "user postgres cannot reach $PG_LINK; using $alt (symlinked from there)"
        rmdir "$PG_LINK" || die "$PG_LINK is not empty; remove it"
        mkdir -p "$alt"; chown postgres: "$alt"; chmod 700 "$alt"
        ln -s "$alt" "$PG_LINK"
      fi
    fi
    PG_LINK="$(readlink -f "$PG_LINK")"
    as_pg mkdir -p "$PG_LINK/data" "$PG_LINK/log"
    as_pg chmod 700 "$PG_LINK/data"
  fi
  PG_DATA="$PG_LINK/data"
  PG_LOG="$PG_LINK/log/postgresql.log"
}

is_running() {
  [ -f "$PG_DATA/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}

init_cluster() {
  [ -s "$PG_DATA/PG_VERSION" ] && return 0
  log "initdb $PG_DATA"
  local pwfile
  pwfile="$(mktemp)"; echo ti >"$pwfile"
  [ "$(id -u)" -eq 0 ] && chown postgres "$pwfile"
  # Bootstrap superuser is `ti`; password auth (SCRAM) on TCP, no Unix socket (see ti_local.conf).
  as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U ti --pwfile="$pwfile" -E UTF8 --no-locale \
    --auth-host=scram-sha-256 --auth-local=peer >"$PG_LINK/log/initdb.log" 2>&1 \
    || { rm -f "$pwfile"; cat "$PG_LINK/log/initdb.log" >&2; die "initdb failed"; }
  rm -f "$pwfile"
  echo "include_if_exists = 'ti_local.conf'" | as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null
}

# Settings rewritten at every start, so a different TI_PG_PORT takes effect on the next start.
write_conf() {
  as_pg tee "$PG_DATA/ti_local.conf" >/dev/null <<EOF
# Written by deploy/local/pg.sh at each start.
listen_addresses = '$TI_HOST'
port = $TI_PG_PORT
unix_socket_directories = ''
max_connections = 200
shared_buffers = 64MB
timezone = 'UTC'
log_timezone = 'UTC'
EOF
}

create_databases() {
  local names=() e
  for e in "${TI_SERVICE_DBS[@]}"; do names+=("'${e#*:}'"); done
  local list; list="$(IFS=,; echo "${names[*]}")"
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d postgres <<EOF
SELECT format('CREATE DATABASE %I OWNER ti', d)
  FROM unnest(ARRAY[$list]) AS d
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = d)
\gexec
EOF
}

drop_databases() {
  local e
  for e in "${TI_SERVICE_DBS[@]}"; do
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d postgres \
      -c "DROP DATABASE IF EXISTS ${e#*:} WITH (FORCE)"
  done
}

cmd_start() {
  find_pg_bin; prepare_dirs; init_cluster
  if is_running; then
    log "PostgreSQL already running on $TI_HOST:$TI_PG_PORT"
  else
    write_conf
    reserve_ports "$TI_PG_PORT"
    log "starting PostgreSQL ($PG_BIN) on $TI_HOST:$TI_PG_PORT"
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 120 start >/dev/null 9>&- \
      || { tail -n 20 "$PG_LOG" >&2; die "PostgreSQL did not start"; }
  fi
  "$PG_BIN/pg_isready" -q -t 30 || die "PostgreSQL not accepting connections on $TI_PG_PORT"
  create_databases
}

cmd_stop() {
  find_pg_bin; prepare_dirs
  if is_running; then
    log "stopping PostgreSQL"
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" stop -m fast -w -t 60 >/dev/null
  else
    log "PostgreSQL not running"
  fi
}

cmd_status() {
  find_pg_bin; prepare_dirs
  if is_running; then
    local pid; pid="$(head -n 1 "$PG_DATA/postmaster.pid")"
    # RSS of the postmaster and all its children (shared buffers counted once per process).
    local rss; rss="$(ps -o rss= --ppid "$pid" -p "$pid" | awk '{s+=$1} END {printf "%d", s/1024}')"
    echo "postgres: running pid=$pid $TI_HOST:$TI_PG_PORT data=$PG_DATA rss_total=${rss}MiB"
  else
    echo "postgres: stopped"
    return 1
  fi
}

cmd_reset() {
  cmd_start
  log "dropping and recreating the per-service databases"
  drop_databases
  create_databases
}

case "${1:-}" in
  start) ti_lock; cmd_start ;;
  stop) ti_lock; cmd_stop ;;
  status) cmd_status ;;
  reset) ti_lock; cmd_reset ;;
  psql) find_pg_bin; shift; exec "$PG_BIN/psql" -d "${1:-postgres}" "${@:2}" ;;
  *) echo "usage: $0 start|stop|status|reset|psql [DB]" >&2; exit 2 ;;
esac
