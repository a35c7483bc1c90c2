#!/usr/bin/env bash
# A real Apache Kafka cluster on loopback for meshline's tests: N combined broker+controller
# KRaft nodes (1 or 3) run from Kafka's jars, which Maven copies into a cache outside the clone
# (tests/kafka/pom.xml). Needs Java 17 and Maven (for the tests only, not for running meshline).
#
#   bash scripts/kafka.sh start N    start the nodes not running (formatting new ones); prints the
#                                    bootstrap servers when every node accepts connections
#   bash scripts/kafka.sh kill I     SIGKILL node I (what a test of a broker loss does)
#   bash scripts/kafka.sh stop       stop every node and delete the cluster's data
#
# Node I (1-based) listens on 127.0.0.1:$((PORT+I-1)) (PLAINTEXT) and its controller on
# 127.0.0.1:$((PORT+100+I-1)); PORT is MESHLINE_KAFKA_PORT (default 29092). Topics default to
# replication factor N and min.insync.replicas min(2, N). The cluster's files live in
# MESHLINE_KAFKA_DIR (default ~/.cache/meshline-kafka/cluster); one start at a time (flock).
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${MESHLINE_KAFKA_CACHE:-$HOME/.cache/meshline-kafka}"
dir="${MESHLINE_KAFKA_DIR:-$cache/cluster}"
port="${MESHLINE_KAFKA_PORT:-29092}"
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9

libs() {
  if [ ! -f "$cache/libs.done" ] || [ tests/kafka/pom.xml -nt "$cache/libs.done" ]; then
    rm -rf "$cache/libs"
    mvn -q -B -f tests/kafka/pom.xml dependency:copy-dependencies \
      -DoutputDirectory="$cache/libs" >&2 \
      || { echo "cannot fetch Apache Kafka's jars with Maven" >&2; exit 1; }
    touch "$cache/libs.done"
  fi
}

running() { [ -f "$1/pid" ] && kill -0 "$(cat "$1/pid")" 2>/dev/null; }

node_config() { # node count
  local i=$1 n=$2 voters="" j
  for j in $(seq 1 "$n"); do voters="$voters${voters:+,}$j@127.0.0.1:$((port + 100 + j - 1))"; done
  local rf=$n isr=$(( n < 2 ? n : 2 ))
  cat <<PROPS
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$((port + i - 1)),CONTROLLER://127.0.0.1:$((port + 100 + i - 1))
advertised.listeners=PLAINTEXT://127.0.0.1:$((port + i - 1))
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/node-$i/data
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
group.initial.rebalance.delay.ms=0
log.flush.interval.messages=1
PROPS
}

start() {
  local n=$1 i node
  case "$n" in 1|3) ;; *) echo "a cluster has 1 or 3 nodes, not $n" >&2; exit 2 ;; esac
  if [ -f "$dir/nodes" ] && [ "$(cat "$dir/nodes")" != "$n" ]; then
    echo "a cluster of $(cat "$dir/nodes") nodes is in $dir: stop it first" >&2; exit 2
  fi
  libs
  echo "$n" > "$dir/nodes"
  [ -f "$dir/cluster-id" ] || java -cp "$cache/libs/*" kafka.tools.StorageTool random-uuid \
      2>/dev/null | tail -n 1 > "$dir/cluster-id"
  cat > "$dir/log4j2.yaml" <<'LOG'
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaRaftServer
        level: INFO
LOG
  for i in $(seq 1 "$n"); do
    node="$dir/node-$i"
    mkdir -p "$node"
    running "$node" && continue
    node_config "$i" "$n" > "$node/server.properties"
    if [ ! -f "$node/data/meta.properties" ]; then
      java -cp "$cache/libs/*" kafka.tools.StorageTool format -t "$(cat "$dir/cluster-id")" \
        -c "$node/server.properties" --ignore-formatted >"$node/format.log" 2>&1 \
        || { cat "$node/format.log" >&2; exit 1; }
    fi
    nohup java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$dir/log4j2.yaml" -cp "$cache/libs/*" \
      kafka.Kafka "$node/server.properties" >"$node/server.log" 2>&1 9>&- &
    echo $! > "$node/pid"
  done
  # every node accepts connections (at most 120 s)
  for i in $(seq 1 "$n"); do
    for _ in $(seq 1 240); do
      (exec 3<>"/dev/tcp/127.0.0.1/$((port + i - 1))") 2>/dev/null && break
      running "$dir/node-$i" || { tail -n 30 "$dir/node-$i/server.log" >&2; exit 1; }
      sleep 0.5
    done
  done
  local bootstrap="" 
  for i in $(seq 1 "$n"); do bootstrap="$bootstrap${bootstrap:+,}127.0.0.1:$((port + i - 1))"; done
  echo "$bootstrap"
}

case "${1:-}" in
  start) start "${2:-1}" ;;
  kill)
    node="$dir/node-${2:?which node}"
    running "$node" && kill -9 "$(cat "$node/pid")"
    rm -f "$node/pid"
    ;;
  stop)
    for node in "$dir"/node-*; do
      [ -d "$node" ] || continue
      running "$node" && kill "$(cat "$node/pid")" 2>/dev/null || true
    done
    sleep 2
    for node in "$dir"/node-*; do
      [ -d "$node" ] || continue
      running "$node" && kill -9 "$(cat "$node/pid")" 2>/dev/null || true
    done
    rm -rf "${dir:?}"/node-* "$dir/nodes" "$dir/cluster-id"
    ;;
  *) echo "usage: $0 start N | kill I | stop" >&2; exit 2 ;;
esac
