#!/usr/bin/env bash
# Local development infrastructure for IS-Messenger: PostgreSQL, Redis and
# RabbitMQ from Debian (bookworm) packages, run directly -- no systemd, no
# Docker.
#
# Usage:
#   scripts/dev-infra.sh [up]    install what is missing, start what is not
#                                running, wait until ready, create the `ism`
#                                role and the service databases (idempotent)
#   scripts/dev-infra.sh status  report whether each component is up
#                                (exit status 1 if any is down)
#   scripts/dev-infra.sh stop    stop RabbitMQ, Redis and PostgreSQL
#                                (for developers; never needed in CI)
#   scripts/dev-infra.sh stats   `up`, then load pg_stat_statements (restarts
#                                PostgreSQL once if it was not preloaded) so
#                                benchmarks can name their costliest statements
#
# Runs as root; re-executes itself through sudo otherwise.
#
# Tunables (environment):
#   DEV_INFRA_PG_TIMEOUT        seconds to wait for PostgreSQL  (default 60)
#   DEV_INFRA_REDIS_TIMEOUT     seconds to wait for Redis       (default 20)
#   DEV_INFRA_RABBITMQ_TIMEOUT  seconds to wait for RabbitMQ    (default 120)
set -euo pipefail

readonly PG_HOST=127.0.0.1
readonly PG_PORT=5432
readonly REDIS_HOST=127.0.0.1
readonly REDIS_PORT=6379
readonly REDIS_DIR=/var/lib/redis
readonly REDIS_LOG_DIR=/var/log/redis
readonly REDIS_LOG=$REDIS_LOG_DIR/ci.log
readonly RABBITMQ_PORT=5672
readonly RABBITMQ_LOG_DIR=/var/log/rabbitmq
readonly RABBITMQ_START_LOG=$RABBITMQ_LOG_DIR/dev-infra-start.log

readonly DB_ROLE=ism
readonly DB_PASSWORD=ism
readonly DATABASES=(
  ism_workspaces
  ism_gateway
  ism_contacts
  ism_conversations
  ism_broadcasts
  ism_workflows
  ism_integrations
)

PG_TIMEOUT=${DEV_INFRA_PG_TIMEOUT:-60}
REDIS_TIMEOUT=${DEV_INFRA_REDIS_TIMEOUT:-20}
RABBITMQ_TIMEOUT=${DEV_INFRA_RABBITMQ_TIMEOUT:-120}

# rabbitmq-server, rabbitmqctl, pg_createcluster and runuser live in sbin.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export DEBIAN_FRONTEND=noninteractive

die() {
  echo "dev-infra: error: $*" >&2
  exit 1
}

usage() {
  sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
}

# --- privileges -------------------------------------------------------------

ensure_root() {
  [[ $EUID -eq 0 ]] && return 0
  command -v sudo >/dev/null 2>&1 || die "must run as root (sudo is not available)"
  local self
  self=$(readlink -f "$0")
  # sudo resets the environment: carry the tunables across explicitly.
  local -a pass=()
  local var
  for var in DEV_INFRA_PG_TIMEOUT DEV_INFRA_REDIS_TIMEOUT DEV_INFRA_RABBITMQ_TIMEOUT; do
    if [[ -n ${!var:-} ]]; then
      pass+=("$var=${!var}")
    fi
  done
  exec sudo -- env "${pass[@]}" bash "$self" "$@"
}

# --- helpers ----------------------------------------------------------------

# PIDs of live (non-zombie) processes whose command name is $1, optionally
# owned by user $2. Stopped servers may linger as zombies when nothing reaps
# them, so the process state matters, not just the name.
live_pids() {
  local name=$1 user=${2:-}
  ps -eo pid=,stat=,user=,comm= | awk -v n="$name" -v u="$user" \
    '$4 == n && $2 !~ /^Z/ && (u == "" || $3 == u) { print $1 }'
}

# wait_until TIMEOUT ALIVE_CHECK PROBE...: run PROBE until it succeeds.
# Returns 1 on timeout, 2 if ALIVE_CHECK (a function name, or "true") reports
# that the server process has gone away.
wait_until() {
  local timeout=$1 alive=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    "$alive" || return 2
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

# Wall clock in milliseconds, and the time since such a mark as "N.Ns".
now_ms() {
  local t=${EPOCHREALTIME/[.,]/}
  echo $((t / 1000))
}

since() {
  local ms=$(($(now_ms) - $1))
  printf '%d.%ds' $((ms / 1000)) $((ms % 1000 / 100))
}

log_tail() {
  local file=$1
  [[ -r $file ]] || return 0
  echo "--- last lines of $file ---" >&2
  tail -n 20 "$file" >&2 || true
}

pkg_installed() {
  [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true) == installed ]]
}

declare -A INSTALLED=()

ensure_packages() {
  local -a missing=()
  if ! pkg_installed postgresql || ! command -v pg_ctlcluster >/dev/null 2>&1 \
    || ! command -v pg_isready >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
    missing+=(postgresql)
    INSTALLED[postgres]=1
  fi
  if ! pkg_installed redis-server || ! command -v redis-server >/dev/null 2>&1 \
    || ! command -v redis-cli >/dev/null 2>&1; then
    missing+=(redis-server)
    INSTALLED[redis]=1
  fi
  if ! pkg_installed rabbitmq-server || ! command -v rabbitmq-server >/dev/null 2>&1 \
    || ! command -v rabbitmqctl >/dev/null 2>&1; then
    missing+=(rabbitmq-server)
    INSTALLED[rabbitmq]=1
  fi
  # promtool (from Debian's prometheus package; its server is not started) checks every
  # port's /metrics in the end-to-end tests.
  if ! command -v promtool >/dev/null 2>&1; then
    missing+=(prometheus)
  fi
  ((${#missing[@]} == 0)) && return 0

  echo "dev-infra: installing ${missing[*]} ..."
  local -a apt_opts=(-q -y -o DPkg::Lock::Timeout=300)
  apt-get "${apt_opts[@]}" update >/dev/null 9>&- \
    || die "apt-get update failed"
  apt-get "${apt_opts[@]}" install --no-install-recommends "${missing[@]}" >/dev/null 9>&- \
    || die "apt-get install ${missing[*]} failed"
  local cmd
  for cmd in pg_ctlcluster pg_isready psql redis-server redis-cli rabbitmq-server rabbitmqctl promtool; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd still missing after apt-get install ${missing[*]}"
  done
}

# --- PostgreSQL ---------------------------------------------------------------

PG_VERSION=""
PG_CLUSTER=""

pg_ready() {
  pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2
}

# Picks the cluster listening on $PG_PORT (else one named main, else the
# first one). Sets PG_VERSION, PG_CLUSTER; returns 1 when there is none.
pg_find_cluster() {
  local line
  line=$(pg_lsclusters -h 2>/dev/null | awk -v p="$PG_PORT" '
    $3 == p     { byport = $0 }
    $2 == "main" && main == "" { main = $0 }
    first == "" { first = $0 }
    END { print (byport != "" ? byport : (main != "" ? main : first)) }')
  [[ -n $line ]] || return 1
  read -r PG_VERSION PG_CLUSTER _ <<<"$line"
}

pg_cluster_status() {
  pg_lsclusters -h "$PG_VERSION" "$PG_CLUSTER" 2>/dev/null | awk '{ print $4 }'
}

pg_cluster_online() {
  [[ $(pg_cluster_status) == online* ]]
}

pg_log_file() {
  pg_lsclusters -h "$PG_VERSION" "$PG_CLUSTER" 2>/dev/null | awk '{ print $7 }'
}

pg_label() {
  if [[ -n $PG_VERSION ]]; then
    echo "$PG_VERSION/$PG_CLUSTER on $PG_HOST:$PG_PORT"
  else
    echo "$PG_HOST:$PG_PORT"
  fi
}

ensure_postgres() {
  local prefix=""
  if [[ -n ${INSTALLED[postgres]:-} ]]; then prefix="installed; "; fi

  if pg_ready; then
    pg_find_cluster || true
    echo "postgres: ${prefix}already running ($(pg_label))"
    return 0
  fi

  local created=""
  if ! pg_find_cluster; then
    local version
    version=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' 2>/dev/null \
      | awk -F/ '{ print $5 }' | sort -V | tail -n 1)
    [[ -n $version ]] || die "postgres: no PostgreSQL server binaries under /usr/lib/postgresql"
    pg_createcluster --port "$PG_PORT" "$version" main >/dev/null 9>&- \
      || die "postgres: pg_createcluster $version main failed"
    pg_find_cluster || die "postgres: cluster $version/main not found after pg_createcluster"
    created="cluster created; "
  fi

  local start
  start=$(now_ms)
  install -d -m 2775 -o postgres -g postgres /run/postgresql
  if ! pg_cluster_online; then
    if ! pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" start </dev/null 9>&-; then
      log_tail "$(pg_log_file)"
      die "postgres: pg_ctlcluster $PG_VERSION $PG_CLUSTER start failed"
    fi
  fi
  local rc=0
  wait_until "$PG_TIMEOUT" pg_cluster_online pg_ready || rc=$?
  if ((rc != 0)); then
    log_tail "$(pg_log_file)"
    if ((rc == 2)); then
      die "postgres: cluster $PG_VERSION/$PG_CLUSTER stopped while starting"
    fi
    die "postgres: not accepting connections on $PG_HOST:$PG_PORT after ${PG_TIMEOUT}s"
  fi
  echo "postgres: ${prefix}${created}started ($(pg_label), $(since "$start"))"
}

# psql with administrative rights: as the postgres OS user over the local
# socket, else as root over TCP when the local setup trusts it (as the
# postgres role, or as root's own role where one exists).
PSQL=()

pg_pick_admin() {
  local probe="SELECT 1 FROM pg_roles WHERE rolname = current_user AND (rolsuper OR (rolcreaterole AND rolcreatedb))"
  local -a candidates
  local c
  for c in runuser-postgres tcp-postgres tcp-root; do
    case $c in
      runuser-postgres) candidates=(runuser -u postgres -- psql -p "$PG_PORT") ;;
      tcp-postgres) candidates=(psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -w) ;;
      tcp-root) candidates=(psql -h "$PG_HOST" -p "$PG_PORT" -U root -w) ;;
    esac
    if [[ $(cd / && "${candidates[@]}" -X -At -d postgres -c "$probe" 2>/dev/null) == 1 ]]; then
      PSQL=("${candidates[@]}" -X -q -At -v ON_ERROR_STOP=1 -d postgres)
      return 0
    fi
  done
  return 1
}

pg_sql() {
  (cd / && "${PSQL[@]}" -c "$1")
}

ensure_databases() {
  pg_pick_admin || die "postgres: cannot connect with administrative rights (tried the postgres OS user, and root over TCP as postgres/root)"

  local -a did=()
  local role
  role=$(pg_sql "SELECT rolcanlogin::text || ' ' || rolcreatedb::text || ' ' || (rolpassword IS NOT NULL)::text FROM pg_authid WHERE rolname = '$DB_ROLE'")
  if [[ -z $role ]]; then
    pg_sql "CREATE ROLE $DB_ROLE WITH LOGIN CREATEDB PASSWORD '$DB_PASSWORD'"
    did+=("created role $DB_ROLE")
  else
    local login createdb haspw
    read -r login createdb haspw <<<"$role"
    if [[ $login != true || $createdb != true ]]; then
      pg_sql "ALTER ROLE $DB_ROLE WITH LOGIN CREATEDB"
      did+=("granted LOGIN CREATEDB to $DB_ROLE")
    fi
    if [[ $haspw != true ]]; then
      pg_sql "ALTER ROLE $DB_ROLE WITH PASSWORD '$DB_PASSWORD'"
      did+=("set password of $DB_ROLE")
    fi
  fi

  local list
  list=$(printf "'%s'," "${DATABASES[@]}")
  declare -A owner=()
  local name own
  while IFS='|' read -r name own; do
    if [[ -n $name ]]; then owner[$name]=$own; fi
  done < <(pg_sql "SELECT datname || '|' || pg_get_userbyid(datdba) FROM pg_database WHERE datname IN (${list%,})")

  local -a created=() reowned=()
  local db
  for db in "${DATABASES[@]}"; do
    if [[ -z ${owner[$db]:-} ]]; then
      pg_sql "CREATE DATABASE $db OWNER $DB_ROLE"
      created+=("$db")
    elif [[ ${owner[$db]} != "$DB_ROLE" ]]; then
      pg_sql "ALTER DATABASE $db OWNER TO $DB_ROLE"
      reowned+=("$db")
    fi
  done
  if ((${#created[@]} > 0)); then
    did+=("created databases ${created[*]}")
  fi
  if ((${#reowned[@]} > 0)); then
    did+=("gave $DB_ROLE ownership of ${reowned[*]}")
  fi

  if ((${#did[@]} == 0)); then
    echo "postgres databases: already present (role $DB_ROLE, ${#DATABASES[@]} databases)"
  else
    local joined
    joined=$(printf '%s; ' "${did[@]}")
    echo "postgres databases: ${joined%; }"
  fi
}

# Room for the end-to-end tests: each runs a whole platform (seven service pools), and
# `make test` runs several at once; the default of 100 connections is too few. Raised
# with a restart, once per machine.
MIN_CONNECTIONS=300
ensure_connections() {
  local current
  current=$(pg_sql "SHOW max_connections")
  if ((current < MIN_CONNECTIONS)); then
    pg_sql "ALTER SYSTEM SET max_connections = $MIN_CONNECTIONS"
    pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" restart </dev/null 9>&- \
      || die "postgres: restart to raise max_connections failed"
    wait_until "$PG_TIMEOUT" pg_cluster_online pg_ready \
      || die "postgres: not accepting connections after the restart"
    echo "postgres: restarted with max_connections = $MIN_CONNECTIONS (was $current)"
  fi
}

# Loads pg_stat_statements into the server (a restart, once) and creates the
# extension in the postgres database, where the benchmarks read it as $DB_ROLE.
ensure_stat_statements() {
  local preload
  preload=$(pg_sql "SHOW shared_preload_libraries")
  if [[ ,${preload// /}, != *,pg_stat_statements,* ]]; then
    pg_sql "ALTER SYSTEM SET shared_preload_libraries = '${preload:+$preload,}pg_stat_statements'"
    pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" restart </dev/null 9>&- \
      || die "postgres: restart to load pg_stat_statements failed"
    wait_until "$PG_TIMEOUT" pg_cluster_online pg_ready \
      || die "postgres: not accepting connections after the restart"
    echo "postgres: restarted with pg_stat_statements preloaded"
  fi
  pg_sql "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
  pg_sql "GRANT pg_read_all_stats TO $DB_ROLE"
  echo "postgres: pg_stat_statements ready"
}

# --- Redis ------------------------------------------------------------------

redis_ping() {
  timeout 3 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null || true
}

redis_ready() {
  [[ $(redis_ping) == PONG ]]
}

redis_alive() {
  [[ -n $(live_pids redis-server) ]]
}

ensure_redis() {
  local prefix=""
  if [[ -n ${INSTALLED[redis]:-} ]]; then prefix="installed; "; fi

  local answer
  answer=$(redis_ping)
  if [[ $answer == PONG ]]; then
    echo "redis: ${prefix}already running ($REDIS_HOST:$REDIS_PORT)"
    return 0
  fi
  if [[ -n $answer && $answer != LOADING* ]]; then
    die "redis: something answers on $REDIS_HOST:$REDIS_PORT but not PONG: $answer"
  fi

  local start
  start=$(now_ms)
  if [[ -z $answer ]]; then
    mkdir -p "$REDIS_DIR" "$REDIS_LOG_DIR"
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" \
      --save "" --appendonly no --dir "$REDIS_DIR" --logfile "$REDIS_LOG" </dev/null 9>&- \
      || { log_tail "$REDIS_LOG"; die "redis: redis-server failed to start"; }
  fi
  local rc=0
  wait_until "$REDIS_TIMEOUT" redis_alive redis_ready || rc=$?
  if ((rc != 0)); then
    log_tail "$REDIS_LOG"
    ((rc == 2)) && die "redis: redis-server exited while starting"
    die "redis: no PONG from $REDIS_HOST:$REDIS_PORT after ${REDIS_TIMEOUT}s"
  fi
  echo "redis: ${prefix}started ($REDIS_HOST:$REDIS_PORT, $(since "$start"))"
}

# --- RabbitMQ ---------------------------------------------------------------

rabbitmq_alive() {
  [[ -n $(live_pids beam.smp rabbitmq) ]]
}

rabbitmq_ready() {
  timeout 20 rabbitmqctl -q await_startup </dev/null >/dev/null 2>&1
}

rabbitmq_fail() {
  log_tail "$RABBITMQ_START_LOG"
  local f
  for f in "$RABBITMQ_LOG_DIR"/rabbit@*.log; do
    [[ $f == *_upgrade.log ]] && continue
    log_tail "$f"
  done
  die "$1"
}

ensure_rabbitmq() {
  local prefix=""
  if [[ -n ${INSTALLED[rabbitmq]:-} ]]; then prefix="installed; "; fi

  # A node process must exist before rabbitmqctl is worth asking.
  if rabbitmq_alive && rabbitmq_ready; then
    echo "rabbitmq: ${prefix}already running (amqp $RABBITMQ_PORT)"
    return 0
  fi

  local start
  start=$(now_ms)
  if ! rabbitmq_alive; then
    install -d -o rabbitmq -g rabbitmq "$RABBITMQ_LOG_DIR"
    # Keep the detached node away from our stdout/stderr: it would hold a
    # caller's pipe open.
    touch "$RABBITMQ_START_LOG"
    chown rabbitmq:rabbitmq "$RABBITMQ_START_LOG"
    rabbitmq-server -detached </dev/null >>"$RABBITMQ_START_LOG" 2>&1 9>&- \
      || rabbitmq_fail "rabbitmq: rabbitmq-server -detached failed"
  fi
  local rc=0
  wait_until "$RABBITMQ_TIMEOUT" true rabbitmq_ready || rc=$?
  if ((rc != 0)); then
    rabbitmq_alive || rabbitmq_fail "rabbitmq: node exited while starting"
    rabbitmq_fail "rabbitmq: not started after ${RABBITMQ_TIMEOUT}s (rabbitmqctl await_startup)"
  fi
  echo "rabbitmq: ${prefix}started (amqp $RABBITMQ_PORT, $(since "$start"))"
}

# --- commands -----------------------------------------------------------------

# Serialises concurrent runs. Everything this script spawns gets fd 9 closed
# (9>&-): a daemon inheriting it would hold the lock for its whole life.
take_lock() {
  { exec 9>/run/lock/dev-infra.lock; } 2>/dev/null || exec 9>/tmp/dev-infra.lock
  if ! flock -n 9; then
    echo "dev-infra: waiting for another run to finish ..." >&2
    flock -w 300 9 || die "another dev-infra run still holds the lock after 300s"
  fi
}

cmd_up() {
  take_lock
  local begin
  begin=$(now_ms)
  ensure_packages
  ensure_postgres
  ensure_databases
  ensure_connections
  ensure_redis
  ensure_rabbitmq
  echo "dev-infra: ready ($(since "$begin"))"
}

cmd_status() {
  local down=0

  if command -v pg_isready >/dev/null 2>&1 && pg_ready; then
    pg_find_cluster || true
    local dbs=""
    if pg_pick_admin; then
      local n list
      list=$(printf "'%s'," "${DATABASES[@]}")
      n=$(pg_sql "SELECT count(*) FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE r.rolname = '$DB_ROLE' AND d.datname IN (${list%,})")
      dbs=", $n/${#DATABASES[@]} ism databases"
    fi
    echo "postgres: up ($(pg_label)$dbs)"
  else
    echo "postgres: down"
    down=1
  fi

  if command -v redis-cli >/dev/null 2>&1 && redis_ready; then
    echo "redis: up ($REDIS_HOST:$REDIS_PORT)"
  else
    echo "redis: down"
    down=1
  fi

  if command -v rabbitmqctl >/dev/null 2>&1 && rabbitmq_alive && rabbitmq_ready; then
    echo "rabbitmq: up (amqp $RABBITMQ_PORT)"
  elif rabbitmq_alive 2>/dev/null; then
    echo "rabbitmq: down (node process present but not started)"
    down=1
  else
    echo "rabbitmq: down"
    down=1
  fi

  return "$down"
}

cmd_stop() {
  take_lock

  if command -v rabbitmqctl >/dev/null 2>&1 && rabbitmq_alive; then
    rabbitmqctl -q shutdown </dev/null >/dev/null 2>&1 \
      || die "rabbitmq: rabbitmqctl shutdown failed"
    wait_until 30 true bash -c '! ps -eo stat=,user=,comm= | awk '\''$3 == "beam.smp" && $2 == "rabbitmq" && $1 !~ /^Z/ { f = 1 } END { exit !f }'\''' \
      || die "rabbitmq: node still running after rabbitmqctl shutdown"
    echo "rabbitmq: stopped"
  else
    echo "rabbitmq: not running"
  fi

  if command -v redis-cli >/dev/null 2>&1 && redis_ready; then
    timeout 10 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    wait_until 15 true bash -c "! timeout 3 redis-cli -h $REDIS_HOST -p $REDIS_PORT ping" \
      || die "redis: still answering after shutdown nosave"
    echo "redis: stopped"
  else
    echo "redis: not running"
  fi

  if command -v pg_lsclusters >/dev/null 2>&1 && pg_find_cluster && pg_cluster_online; then
    pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" stop </dev/null \
      || die "postgres: pg_ctlcluster $PG_VERSION $PG_CLUSTER stop failed"
    echo "postgres: stopped ($PG_VERSION/$PG_CLUSTER)"
  else
    echo "postgres: not running"
  fi
}

main() {
  local cmd=${1:-up}
  case $cmd in
    -h | --help | help)
      usage
      return 0
      ;;
    up | start | status | stop | stats) ;;
    *)
      usage >&2
      return 2
      ;;
  esac
  ensure_root "$@"
  case $cmd in
    up | start) cmd_up ;;
    stats)
      cmd_up
      ensure_stat_statements
      ;;
    status) cmd_status ;;
    stop) cmd_stop ;;
  esac
}

main "$@"
