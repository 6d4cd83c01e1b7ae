# shellcheck shell=bash disable=SC2034  # (variables used by the scripts that source this file)
# Shared settings and helpers for the deploy/local scripts (sourced, not run).
# Everything lives under the repository's var/ directory and binds to 127.0.0.1 only.

# Repository root = two levels above this file.
TI_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TI_LOCAL_DIR="$TI_ROOT/deploy/local"
TI_VAR="${TI_VAR:-$TI_ROOT/var}"

# Ports (overridable from the environment).
TI_PG_PORT="${TI_PG_PORT:-54329}"
TI_KAFKA_PORT="${TI_KAFKA_PORT:-59092}"
TI_KAFKA_CONTROLLER_PORT="${TI_KAFKA_CONTROLLER_PORT:-59093}"
TI_HOST=127.0.0.1

# The five per-service databases, as "ENV_NAME:database".
TI_SERVICE_DBS=(
  "TERRITORY_REGISTRY:ti_territory_registry"
  "ACTION_TRACKER:ti_action_tracker"
  "FUNDING_LEDGER:ti_funding_ledger"
  "SITE_CATALOG:ti_site_catalog"
  "REPORTING:ti_reporting"
)

# Topics, as "name:partitions".
TI_TOPICS=(
  "ti.territories:3"
  "ti.actions:3"
  "ti.grants:3"
  "ti.sites:3"
  "ti.dead-letters:1"
)

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# apt-get install, once per script run, only when something is missing.
_ti_apt_updated=0
apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found; install $* by hand"
  [ "$(id -u)" -eq 0 ] || die "need root to apt-get install $*"
  if [ "$_ti_apt_updated" -eq 0 ]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    _ti_apt_updated=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

# True when the process in pid file $1 is alive and its command line contains $2
# (guards against a stale pid file whose pid was reused by someone else's process).
pid_alive() {
  local pidfile="$1" marker="$2" pid
  [ -s "$pidfile" ] || return 1
  pid="$(cat "$pidfile")"
  [ -r "/proc/$pid/cmdline" ] || return 1
  local cmd; cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmd" == *"$marker"* ]]
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
  (exec 3<>"/dev/tcp/$TI_HOST/$1") 2>/dev/null
}

# True when a TCP socket on this machine listens on port $1 or is connected to itself through it
# (local address = remote address: a TCP self-connect, see reserve_ports). Either keeps a server
# from binding the port. (Sockets accepted by our own server, in TIME_WAIT after it stopped, do
# not: Kafka and PostgreSQL bind with SO_REUSEADDR.)
port_busy() {
  local hex; hex="$(printf '%04X' "$1")"
  cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v h="$hex" '
    { split($2, l, ":"); if (l[2] == h && ($4 == "0A" || $2 == $3)) found = 1 }
    END { exit !found }'
}

# Our ports lie inside Linux's ephemeral range (32768-60999): a client that reconnects in a
# tight loop while the server is down can be given the server's own port as its source port
# and connect to itself (TCP self-connect); the socket then blocks the server's restart for up
# to 60 s (TIME_WAIT). Reserving the ports (per network namespace, root only) prevents that.
reserve_ports() {
  local f=/proc/sys/net/ipv4/ip_local_reserved_ports cur p add=""
  [ "${TI_RESERVE_PORTS:-1}" = 1 ] && [ -w "$f" ] || return 0
  cur="$(cat "$f")"
  for p in "$@"; do
    # Already reserved if listed alone or inside a range a-b.
    if ! awk -v p="$p" -F, '{for(i=1;i<=NF;i++){n=split($i,r,"-"); if((n==1&&r[1]==p)||(n==2&&p>=r[1]&&p<=r[2])) f=1}} END{exit !f}' <<<"$cur"; then
      add="$add,$p"
    fi
  done
  [ -n "$add" ] || return 0
  log "reserving ports ${add#,} (net.ipv4.ip_local_reserved_ports)"
  echo "${cur:+$cur}${cur:+,}${add#,}" >"$f" 2>/dev/null || log "could not reserve ports (ignored)"
}

# Resident memory of a pid, in MiB.
rss_mib() {
  awk '/^VmRSS:/ {printf "%d", $2/1024}' "/proc/$1/status" 2>/dev/null || echo "?"
}

# Milliseconds since the epoch, and a duration in seconds with one decimal since $1 (ms).
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
since() { local d=$(( $(now_ms) - $1 )); printf '%d.%d' $((d / 1000)) $(((d % 1000) / 100)); }

# Serialise the scripts (several people or test runs may call up.sh at the same time): the first
# caller holds var/.infra.lock; scripts it runs inherit TI_INFRA_LOCKED and do not wait for it.
# Daemons must be started with 9>&- so that they do not keep the lock.
ti_lock() {
  [ -n "${TI_INFRA_LOCKED:-}" ] && return 0
  mkdir -p "$TI_VAR"
  exec 9>>"$TI_VAR/.infra.lock"
  if command -v flock >/dev/null; then
    flock -w 900 9 || die "another deploy/local script holds $TI_VAR/.infra.lock"
  fi
  export TI_INFRA_LOCKED=1
}
