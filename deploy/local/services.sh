#!/usr/bin/env bash
# The five services of the platform in distributed mode: one uvicorn process each on 127.0.0.1,
# PostgreSQL databases and Kafka from var/local.env (written by up.sh), TI_BUS=kafka; beside each
# service, its outbox relay as a process of its own (`ti relay <service>`, TI_RELAY=process).
#
#   deploy/local/services.sh start   [service]   start (all five, or one), return when /readyz is 200
#   deploy/local/services.sh stop    [service]   SIGTERM by pid file, SIGKILL after a timeout
#   deploy/local/services.sh status  [service]   one line per service; exit 1 if one is down
#   deploy/local/services.sh restart [service]
#
# Overridable from the environment (the end-to-end suite starts its own isolated platform so):
#   TI_<SERVICE>_PORT            e.g. TI_FUNDING_LEDGER_PORT (defaults 8001-8005)
#   TI_<SERVICE>_DATABASE_URL    as in var/local.env (a value already set wins over the file)
#   TI_KAFKA_BOOTSTRAP, TI_TOPIC_PREFIX, TI_JWT_SECRET, TI_JWT_ISS, TI_JWT_AUD
#   TI_SERVICES_RUN_DIR          pid files (default var/run)
#   TI_SERVICES_LOG_DIR          logs (default var/log)
#   TI_SERVICES_ENV_FILE         the environment file (default var/local.env)
#   TI_SERVICES_READY_TIMEOUT    seconds to wait for /readyz (default 90)
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# "service:module:default port"
TI_SERVICES=(
  "territory-registry:territory_registry:8001"
  "action-tracker:action_tracker:8002"
  "funding-ledger:funding_ledger:8003"
  "site-catalog:site_catalog:8004"
  "reporting:reporting:8005"
)

RUN_DIR="${TI_SERVICES_RUN_DIR:-$TI_VAR/run}"
LOG_DIR="${TI_SERVICES_LOG_DIR:-$TI_VAR/log}"
ENV_FILE="${TI_SERVICES_ENV_FILE:-$TI_VAR/local.env}"
READY_TIMEOUT="${TI_SERVICES_READY_TIMEOUT:-90}"
STOP_TIMEOUT="${TI_SERVICES_STOP_TIMEOUT:-15}"
UVICORN="$TI_ROOT/.venv/bin/uvicorn"
TI_CLI="$TI_ROOT/.venv/bin/ti"

# Variables of the environment file, without overriding those already set.
load_env_file() {
  [ -f "$ENV_FILE" ] || return 0
  local line kv name
  while IFS= read -r line; do
    [[ "$line" =~ ^export\ ([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
    name="${BASH_REMATCH[1]}"
    kv="${BASH_REMATCH[2]}"
    if [ -z "${!name+x}" ]; then export "$name=$kv"; fi
  done <"$ENV_FILE"
}

env_name() { local s="${1^^}"; echo "${s//-/_}"; }

port_of() {
  local var; var="TI_$(env_name "$1")_PORT"
  echo "${!var:-$2}"
}

pid_file() { echo "$RUN_DIR/$1.pid"; }
log_file() { echo "$LOG_DIR/$1.log"; }
marker() { echo "$2.main:create_app --host $TI_HOST --port $3"; }
relay_pid_file() { echo "$RUN_DIR/$1-relay.pid"; }
relay_log_file() { echo "$LOG_DIR/$1-relay.log"; }
relay_marker() { echo "relay $1"; }
relay_running() { pid_alive "$(relay_pid_file "$1")" "$(relay_marker "$1")"; }

# The entries of TI_SERVICES selected by the optional argument.
selected() {
  local want="${1:-}" e found=0
  for e in "${TI_SERVICES[@]}"; do
    if [ -z "$want" ] || [ "${e%%:*}" = "$want" ]; then echo "$e"; found=1; fi
  done
  [ "$found" = 1 ] || die "unknown service '$want' (one of: territory-registry action-tracker funding-ledger site-catalog reporting)"
}

is_running() {  # name module port
  pid_alive "$(pid_file "$1")" "$(marker "$@")"
}

readyz_code() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://$TI_HOST:$1/readyz" 2>/dev/null || true
}

# The relay of a service: started before it (it waits for the tables the service creates).
start_relay() {  # name
  local name="$1"
  if relay_running "$name"; then return 0; fi
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  rm -f "$(relay_pid_file "$name")"
  # shellcheck disable=SC2016  # $$ is the inner shell's
  TI_BUS=kafka TI_RELAY=process setsid bash -c 'echo $$ >"$0"; exec "$@"' "$(relay_pid_file "$name")" \
    "$TI_CLI" relay "$name" >>"$(relay_log_file "$name")" 2>&1 </dev/null &
  await_pid_file "$(relay_pid_file "$name")"
}

# The background process writes its pid file itself: until it has, it is starting, not gone (a
# stale file of an earlier run is removed before the start, so never read as the new process's).
await_pid_file() {  # pidfile
  local _
  for _ in $(seq 1 100); do
    [ -s "$1" ] && return 0
    sleep 0.1
  done
  return 0  # wait_ready then reports the process as gone
}

start_one() {  # name module port
  local name="$1" module="$2" port="$3"
  start_relay "$name"
  if is_running "$@"; then
    log "$name already running on $TI_HOST:$port (pid $(cat "$(pid_file "$name")"))"
    return 0
  fi
  port_open "$port" && die "port $port ($name) is taken by another process; set TI_$(env_name "$name")_PORT"
  local db_var; db_var="TI_$(env_name "$name")_DATABASE_URL"
  [ -n "${!db_var:-}" ] || log "$db_var is not set: $name would use SQLite under var/ (run deploy/local/up.sh first)"
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  rm -f "$(pid_file "$name")"
  log "starting $name on $TI_HOST:$port"
  # setsid: own session, so that the caller's signals do not reach it; the inner shell writes its
  # pid then exec's uvicorn, so the pid file holds uvicorn's pid.
  # shellcheck disable=SC2016  # $$ is the inner shell's
  # the dashboard (reporting) reads the territories' names from territory-registry's public API
  TI_BUS=kafka TI_RELAY=process TI_DASHBOARD_API_URL="${TI_DASHBOARD_API_URL:-http://$TI_HOST:${TI_TERRITORY_REGISTRY_PORT:-8001}}" setsid bash -c 'echo $$ >"$0"; exec "$@"' "$(pid_file "$name")" \
    "$UVICORN" --factory "$module.main:create_app" --host "$TI_HOST" --port "$port" \
    --no-access-log --timeout-graceful-shutdown 5 \
    >>"$(log_file "$name")" 2>&1 </dev/null &
  await_pid_file "$(pid_file "$name")"
}

wait_ready() {  # name module port deadline_s
  local name="$1" port="$3" deadline="$4"
  while :; do
    [ "$(readyz_code "$port")" = 200 ] && { log "$name ready on $TI_HOST:$port"; return 0; }
    if ! is_running "$1" "$2" "$3"; then
      tail -n 40 "$(log_file "$name")" >&2 || true
      die "$name exited during start-up (log: $(log_file "$name"))"
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      tail -n 40 "$(log_file "$name")" >&2 || true
      die "$name not ready on $TI_HOST:$port after ${READY_TIMEOUT}s (log: $(log_file "$name"))"
    fi
    sleep 0.3
  done
}

signal_one() {  # name module port: SIGTERM, the pid on stdout
  local name="$1" pidfile; pidfile="$(pid_file "$1")"
  if ! is_running "$@"; then
    rm -f "$pidfile"
    return 0
  fi
  local pid; pid="$(cat "$pidfile")"
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  echo "$pid"
}

signal_relay() {  # name: SIGTERM to its relay, the pid on stdout
  local pidfile; pidfile="$(relay_pid_file "$1")"
  if ! relay_running "$1"; then
    rm -f "$pidfile"
    return 0
  fi
  local pid; pid="$(cat "$pidfile")"
  kill -TERM "$pid" 2>/dev/null || true
  echo "$pid"
}

# Wait for the pids to exit; SIGKILL those still there after STOP_TIMEOUT.
reap() {
  local pid i alive
  for i in $(seq 1 $((STOP_TIMEOUT * 5))); do
    alive=0
    for pid in "$@"; do [ -d "/proc/$pid" ] && alive=1; done
    [ "$alive" = 0 ] && return 0
    sleep 0.2
  done
  for pid in "$@"; do
    if [ -d "/proc/$pid" ]; then
      log "pid $pid still running after ${STOP_TIMEOUT}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}

cmd_start() {
  local e name module port t0; t0="$(now_ms)"
  local entries; mapfile -t entries < <(selected "${1:-}")
  for e in "${entries[@]}"; do
    IFS=: read -r name module port <<<"$e"
    start_one "$name" "$module" "$(port_of "$name" "$port")"
  done
  local deadline=$(( $(date +%s) + READY_TIMEOUT ))
  for e in "${entries[@]}"; do
    IFS=: read -r name module port <<<"$e"
    wait_ready "$name" "$module" "$(port_of "$name" "$port")" "$deadline"
  done
  echo "services ready in $(since "$t0") s (logs in $LOG_DIR)"
}

cmd_stop() {
  local e name module port pids=() pid entries; mapfile -t entries < <(selected "${1:-}")
  for e in "${entries[@]}"; do
    IFS=: read -r name module port <<<"$e"
    pid="$(signal_one "$name" "$module" "$(port_of "$name" "$port")")"
    [ -n "$pid" ] && pids+=("$pid")
    rm -f "$(pid_file "$name")"
    pid="$(signal_relay "$name")"
    [ -n "$pid" ] && pids+=("$pid")
    rm -f "$(relay_pid_file "$name")"
  done
  [ "${#pids[@]}" -gt 0 ] && reap "${pids[@]}"
  return 0
}

cmd_status() {
  local e name module port pid rc=0 entries; mapfile -t entries < <(selected "${1:-}")
  for e in "${entries[@]}"; do
    IFS=: read -r name module port <<<"$e"
    port="$(port_of "$name" "$port")"
    if is_running "$name" "$module" "$port"; then
      pid="$(cat "$(pid_file "$name")")"
      echo "$name: running pid=$pid $TI_HOST:$port readyz=$(readyz_code "$port") rss=$(rss_mib "$pid")MiB"
    else
      echo "$name: stopped"
      rc=1
    fi
    if relay_running "$name"; then
      pid="$(cat "$(relay_pid_file "$name")")"
      echo "$name relay: running pid=$pid rss=$(rss_mib "$pid")MiB"
    else
      echo "$name relay: stopped"
      rc=1
    fi
  done
  return "$rc"
}

load_env_file
export TI_BUS=kafka TI_RELAY=process
case "${1:-}" in
  start|restart)
    [ -n "${TI_JWT_SECRET:-}" ] \
      || log "TI_JWT_SECRET not set: the services use the development secret '$("$TI_ROOT/.venv/bin/python" -c 'from ti_shared.settings import DEFAULT_JWT_SECRET as s; print(s)' 2>/dev/null)' (mint tokens with: .venv/bin/ti token …)" ;;
esac

case "${1:-}" in
  start) cmd_start "${2:-}" ;;
  stop) cmd_stop "${2:-}" ;;
  status) cmd_status "${2:-}" ;;
  restart) cmd_stop "${2:-}"; cmd_start "${2:-}" ;;
  *) echo "usage: $0 start|stop|status|restart [service]" >&2; exit 2 ;;
esac
