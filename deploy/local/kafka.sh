#!/usr/bin/env bash
# Local Apache Kafka 4.1 for the platform: a single KRaft node (broker + controller) run from the
# Maven Central jars listed in deploy/local/kafka/pom.xml; everything under var/kafka.
#
#   deploy/local/kafka.sh start    fetch jars once, format storage once, start, wait, create topics
#   deploy/local/kafka.sh stop     SIGTERM (pid file), wait, SIGKILL if it will not stop
#   deploy/local/kafka.sh status   running or not, port, memory
#   deploy/local/kafka.sh reset    stop, wipe the data, re-format, start, create topics
#   deploy/local/kafka.sh topics   create the missing topics (Kafka must be running)
#   deploy/local/kafka.sh run CLASS ARGS...   run a Kafka tool class with the jars, e.g.
#        deploy/local/kafka.sh run org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:59092 --list
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

K_DIR="$TI_VAR/kafka"
K_LIBS="$K_DIR/libs"
K_DATA="$K_DIR/data"
K_LOGS="$K_DIR/log"
K_CONF="$K_DIR/server.properties"
K_PID="$K_DIR/kafka.pid"
K_POM="$TI_LOCAL_DIR/kafka/pom.xml"
K_BOOTSTRAP="$TI_HOST:$TI_KAFKA_PORT"
K_HEAP="${TI_KAFKA_HEAP:--Xms256m -Xmx1g}"   # thousands of test topics need more than 512 MiB
K_STOP_TIMEOUT="${TI_KAFKA_STOP_TIMEOUT:-30}"

ensure_java() {
  command -v java >/dev/null || apt_install openjdk-17-jdk-headless   # javac: see ensure_topics
}

# Assemble the jars with Maven once; the pom's checksum in libs/.pom.cksum says they are current.
ensure_libs() {
  ensure_java
  local sum; sum="$(cksum <"$K_POM")"
  if [ -f "$K_LIBS/.pom.cksum" ] && [ "$(cat "$K_LIBS/.pom.cksum")" = "$sum" ]; then return 0; fi
  command -v mvn >/dev/null || apt_install maven
  log "assembling Kafka jars with Maven into $K_LIBS"
  local tmp="$K_DIR/libs.tmp"
  rm -rf "$tmp"; mkdir -p "$K_DIR"
  # TI_MAVEN_REPO: another local Maven repository than ~/.m2/repository (e.g. a CI cache).
  mvn -q -B -Dstyle.color=never ${TI_MAVEN_REPO:+-Dmaven.repo.local="$TI_MAVEN_REPO"} \
    -f "$K_POM" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" \
    >"$K_DIR/maven.log" 2>&1 || { cat "$K_DIR/maven.log" >&2; die "Maven could not assemble the jars"; }
  echo "$sum" >"$tmp/.pom.cksum"
  rm -rf "$K_LIBS"; mv "$tmp" "$K_LIBS"
}

# Run a Kafka class (tools) with a small, quick-starting JVM and quiet logging.
kafka_tool() {
  java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$K_DIR/tools-log4j2.properties" \
    -cp "$K_LIBS/*:$K_DIR/classes" "$@"
}

write_configs() {
  mkdir -p "$K_DATA" "$K_LOGS"
  # Static controller quorum of one voter: the controller endpoint is not recorded in the data,
  # so the storage is formatted with -t <cluster id> only (no --standalone, which is for the
  # dynamic quorum of KIP-853 and is refused together with controller.quorum.voters).
  cat >"$K_CONF" <<EOF
# Written by deploy/local/kafka.sh at each start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$TI_HOST:$TI_KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$TI_HOST:$TI_KAFKA_PORT,CONTROLLER://$TI_HOST:$TI_KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$TI_HOST:$TI_KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$K_DATA
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
offsets.topic.num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.ms=-1
log.retention.bytes=-1
num.network.threads=2
num.io.threads=4
EOF
  cat >"$K_DIR/log4j2.properties" <<'EOF'
# Broker logging (Log4j 2), written by deploy/local/kafka.sh.
status = warn
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
EOF
  write_tools_config
}

write_tools_config() {
  mkdir -p "$K_DIR"
  cat >"$K_DIR/tools-log4j2.properties" <<'EOF'
# Command-line tools: warnings only, on stderr.
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
EOF
}

# Format the log directory once (meta.properties marks a formatted directory).
format_storage() {
  [ -f "$K_DATA/meta.properties" ] && return 0
  local cid
  if [ -s "$K_DIR/cluster.id" ]; then
    cid="$(cat "$K_DIR/cluster.id")"
  else
    # A Kafka cluster id is 16 random bytes in URL-safe base64 without padding.
    cid="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    echo "$cid" >"$K_DIR/cluster.id"
  fi
  log "formatting Kafka storage (cluster id $cid)"
  kafka_tool kafka.tools.StorageTool format -t "$cid" -c "$K_CONF" --ignore-formatted >&2
}

# A socket left on one of our ports (TIME_WAIT after a client self-connect, see reserve_ports in
# common.sh) makes Kafka die with "Address already in use": wait for it to go (at most 65 s).
wait_ports_free() {
  local p i
  for p in "$@"; do
    for i in $(seq 1 130); do
      port_busy "$p" || break
      [ "$i" = 1 ] && log "port $p still has a socket on it (TIME_WAIT?); waiting for it to clear"
      sleep 0.5
    done
  done
}

is_running() { pid_alive "$K_PID" "$K_CONF"; }

cmd_start() {
  ensure_libs
  if is_running; then
    log "Kafka already running on $K_BOOTSTRAP (pid $(cat "$K_PID"))"
  else
    port_open "$TI_KAFKA_PORT" && die "port $TI_KAFKA_PORT is taken by another process"
    reserve_ports "$TI_KAFKA_PORT" "$TI_KAFKA_CONTROLLER_PORT"
    wait_ports_free "$TI_KAFKA_PORT" "$TI_KAFKA_CONTROLLER_PORT"
    write_configs
    format_storage
    log "starting Kafka on $K_BOOTSTRAP (controller $TI_HOST:$TI_KAFKA_CONTROLLER_PORT)"
    # setsid: detach from the caller's session; the inner shell writes its own pid, then
    # exec's java, so the pid file holds the JVM's pid.
    # shellcheck disable=SC2086,SC2016  # K_HEAP holds several options; $$ is the inner shell's
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$K_PID" \
      java $K_HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
      -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
      -Dkafka.logs.dir="$K_LOGS" -Dlog4j2.configurationFile="$K_DIR/log4j2.properties" \
      -cp "$K_LIBS/*" kafka.Kafka "$K_CONF" \
      >>"$K_LOGS/kafka.out" 2>&1 </dev/null 9>&- &
    local i
    for i in $(seq 1 240); do
      port_open "$TI_KAFKA_PORT" && break
      if [ "$i" -gt 2 ] && ! is_running; then
        tail -n 30 "$K_LOGS/kafka.out" "$K_LOGS/server.log" >&2 2>/dev/null || true
        die "Kafka exited during start-up (logs in $K_LOGS)"
      fi
      sleep 0.5
    done
    port_open "$TI_KAFKA_PORT" || die "Kafka not listening on $K_BOOTSTRAP after 120 s"
  fi
  ensure_topics
}

# Creates the missing topics; listing them first also proves that the broker serves metadata.
# One JVM (EnsureTopics.java, compiled once into var/kafka/classes) when a JDK is there; else
# Kafka's TopicCommand, one JVM per topic.
ensure_topics() {
  local specs=() e
  for e in "${TI_TOPICS[@]}"; do specs+=("$e"); done
  local src="$TI_LOCAL_DIR/kafka/EnsureTopics.java"
  if command -v javac >/dev/null; then
    if [ ! -f "$K_DIR/classes/EnsureTopics.class" ] || [ "$src" -nt "$K_DIR/classes/EnsureTopics.class" ]; then
      javac -nowarn -cp "$K_LIBS/*" -d "$K_DIR/classes" "$src"
    fi
    kafka_tool EnsureTopics "$K_BOOTSTRAP" "${specs[@]}" \
      || die "could not list or create the topics on $K_BOOTSTRAP"
    return 0
  fi
  local existing name parts
  existing="$(kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$K_BOOTSTRAP" --list)" \
    || die "Kafka metadata request failed"
  for e in "${specs[@]}"; do
    name="${e%%:*}"; parts="${e#*:}"
    if ! grep -qxF "$name" <<<"$existing"; then
      log "creating topic $name ($parts partitions)"
      kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$K_BOOTSTRAP" --create \
        --if-not-exists --topic "$name" --partitions "$parts" --replication-factor 1 \
        --config retention.ms=-1 --config retention.bytes=-1 >/dev/null
    fi
  done
}

cmd_stop() {
  if ! is_running; then
    log "Kafka not running"; rm -f "$K_PID"; return 0
  fi
  local pid i; pid="$(cat "$K_PID")"
  log "stopping Kafka (pid $pid)"
  kill -TERM "$pid"
  for i in $(seq 1 $((K_STOP_TIMEOUT * 2))); do
    [ -d "/proc/$pid" ] || break
    sleep 0.5
  done
  if [ -d "/proc/$pid" ]; then
    log "Kafka still running after ${K_STOP_TIMEOUT}s: SIGKILL"
    kill -KILL "$pid"
    sleep 0.5
  fi
  rm -f "$K_PID"
}

cmd_status() {
  if is_running; then
    local pid; pid="$(cat "$K_PID")"
    local state=listening; port_open "$TI_KAFKA_PORT" || state="not listening yet"
    echo "kafka: running pid=$pid $K_BOOTSTRAP ($state) data=$K_DATA rss=$(rss_mib "$pid")MiB"
  else
    echo "kafka: stopped"
    return 1
  fi
}

cmd_reset() {
  cmd_stop
  log "wiping Kafka data $K_DATA"
  rm -rf "$K_DATA"
  cmd_start
}

case "${1:-}" in
  start) ti_lock; cmd_start ;;
  stop) ti_lock; cmd_stop ;;
  status) cmd_status ;;
  reset) ti_lock; cmd_reset ;;
  topics) ti_lock; ensure_libs; ensure_topics ;;
  run)
    shift
    [ -f "$K_LIBS/.pom.cksum" ] || (ti_lock; ensure_libs)
    [ -f "$K_DIR/tools-log4j2.properties" ] || write_tools_config
    kafka_tool "$@" ;;
  *) echo "usage: $0 start|stop|status|reset|topics|run CLASS [ARGS...]" >&2; exit 2 ;;
esac
