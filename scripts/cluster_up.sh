#!/usr/bin/env bash
# A one-machine cluster with real services: Debian's PostgreSQL (Dagster's instance storage and the
# DuckLake catalog) and Redis (the Celery broker) on loopback, N Celery workers, and a day of toolsets
# run through them. Everything lives under $FUNREASON_CLUSTER_DIR (default data/cluster, git-ignored).
#
#   scripts/cluster_up.sh install     apt-get install postgresql redis-server (as root), if missing
#   scripts/cluster_up.sh up          start PostgreSQL + Redis, create the databases, start the workers
#   scripts/cluster_up.sh run [ARGS]  run a day through the workers (scripts/cluster_day.py ARGS)
#   scripts/cluster_up.sh workers N   (re)start N workers
#   scripts/cluster_up.sh down        stop workers, Redis, PostgreSQL (data stays; rm -rf the dir to reset)
#   scripts/cluster_up.sh             install, up, run (a day of 4 toolsets), then leave it running
#
# Settings (environment): FUNREASON_CLUSTER_DIR, FUNREASON_PG_PORT (55432), FUNREASON_REDIS_PORT (56379),
# FUNREASON_CLUSTER_WORKERS (2), FUNREASON_LLM_SLOTS (2: concurrent LLM steps, Dagster pool `llm`).
# The variables that point a process at the services are written to $FUNREASON_CLUSTER_DIR/env.sh;
# every worker, the webserver/daemon and the launching process source the same file.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DIR=$(realpath -m "${FUNREASON_CLUSTER_DIR:-$ROOT/data/cluster}")
PG_PORT=${FUNREASON_PG_PORT:-55432}
REDIS_PORT=${FUNREASON_REDIS_PORT:-56379}
WORKERS=${FUNREASON_CLUSTER_WORKERS:-2}
LLM_SLOTS=${FUNREASON_LLM_SLOTS:-2}
VENV_BIN=${FUNREASON_VENV_BIN:-$ROOT/.venv/bin}
PG_USER=funreason

pg_bin() {  # Debian puts the server binaries outside PATH, one directory per major version
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

cmd_install() {
    if pg_bin >/dev/null && command -v redis-server >/dev/null; then
        echo "cluster: postgresql ($(pg_bin)) and redis-server already installed"
        return
    fi
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo=(sudo -n); else
            echo "cluster: postgresql/redis-server missing and this user cannot run apt-get (not root, no sudo)" >&2
            exit 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends postgresql redis-server >/dev/null
    # the packages' own system-wide services are not used (ours run on private ports and directories)
    echo "cluster: installed $(pg_bin) and $(command -v redis-server)"
}

as_pg() {  # the server refuses to run as root: run it as the `postgres` user Debian's package creates
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_postgres() {
    local bin; bin=$(pg_bin) || { echo "cluster: PostgreSQL is not installed (scripts/cluster_up.sh install)" >&2; exit 1; }
    mkdir -p "$DIR/pg"
    [ "$(id -u)" -eq 0 ] && chown postgres "$DIR/pg" && chmod 700 "$DIR/pg"
    if [ ! -f "$DIR/pg/data/PG_VERSION" ]; then
        as_pg "$bin/initdb" -D "$DIR/pg/data" -U "$PG_USER" --auth=trust -E UTF8 >"$DIR/logs/initdb.log"
    fi
    if ! as_pg "$bin/pg_ctl" -D "$DIR/pg/data" status >/dev/null 2>&1; then
        # loopback only; the socket in our own directory, so nothing else on the machine is touched
        as_pg "$bin/pg_ctl" -D "$DIR/pg/data" -l "$DIR/pg/server.log" -w -t 60 start \
            -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $DIR/pg -c max_connections=200 -c fsync=off" >/dev/null
    fi
    local db
    for db in dagster lake; do
        if ! "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres -tAc \
                "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
            "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" "$db"
        fi
    done
    echo "cluster: PostgreSQL on 127.0.0.1:$PG_PORT (databases dagster, lake)"
}

start_redis() {
    command -v redis-server >/dev/null || { echo "cluster: redis-server is not installed (scripts/cluster_up.sh install)" >&2; exit 1; }
    mkdir -p "$DIR/redis"
    if ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
        redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$DIR/redis" --save "" --appendonly no \
            --daemonize yes --pidfile "$DIR/redis/redis.pid" --logfile "$DIR/redis/redis.log"
        for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
    fi
    echo "cluster: Redis on 127.0.0.1:$REDIS_PORT"
}

write_env() {
    mkdir -p "$DIR/dagster_home" "$DIR/lake"
    cp deploy/dagster.postgres.yaml "$DIR/dagster_home/dagster.yaml"
    cat >"$DIR/env.sh" <<ENV
# written by scripts/cluster_up.sh: source it in every process that uses the cluster
export DAGSTER_HOME=$DIR/dagster_home
export FUNREASON_PG_HOST=127.0.0.1 FUNREASON_PG_PORT=$PG_PORT FUNREASON_PG_USER=$PG_USER
# loopback, trust auth: libpq ignores it here; on real hosts set the real one (psycopg2 and DuckLake read it)
export FUNREASON_PG_PASSWORD=funreason PGPASSWORD=funreason
export FUNREASON_PG_DB=dagster
export FUNREASON_LAKE='postgres:dbname=lake host=127.0.0.1 port=$PG_PORT user=$PG_USER'
export FUNREASON_LAKE_DATA=$DIR/lake/
export FUNREASON_EXECUTOR=celery
export FUNREASON_CELERY_BROKER=redis://127.0.0.1:$REDIS_PORT/0
export FUNREASON_CELERY_BACKEND=redis://127.0.0.1:$REDIS_PORT/1
export FUNREASON_DB=$DIR/local.duckdb
export FUNREASON_EXPORTS=$DIR/exports
export PATH=$VENV_BIN:\$PATH
ENV
    cat >"$DIR/celery.yaml" <<YAML
# the worker's side of the executor config (funreason_pipeline/defs/executor.py builds the same)
broker: redis://127.0.0.1:$REDIS_PORT/0
backend: redis://127.0.0.1:$REDIS_PORT/1
YAML
}

stop_workers() {
    local f pid
    for f in "$DIR"/workers/*.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        # each worker leads its own session (setsid): end its whole group, and only that
        kill -TERM -- "-$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$pid" 2>/dev/null || true
        rm -f "$f"
    done
}

start_workers() {
    local n=$1 i
    stop_workers
    mkdir -p "$DIR/workers"
    # shellcheck disable=SC1091
    source "$DIR/env.sh"
    # creates the instance tables in PostgreSQL once, before workers and runs race to, and caps LLM steps
    "$VENV_BIN/dagster" instance concurrency set llm "$LLM_SLOTS" >/dev/null
    for i in $(seq "$n"); do
        # one process per worker, in its own session: no worker is another's child or shares its parent's
        # lifetime (kill one and the others carry on). --pool=solo: the worker itself executes the step.
        setsid "$VENV_BIN/celery" -A dagster_celery.app -b "$FUNREASON_CELERY_BROKER" --result-backend \
            "$FUNREASON_CELERY_BACKEND" worker -n "w$i@%h" -Q dagster --pool=solo --concurrency=1 \
            --prefetch-multiplier=1 --without-gossip --without-mingle --without-heartbeat -l INFO \
            >"$DIR/workers/w$i.log" 2>&1 </dev/null &
        echo $! >"$DIR/workers/w$i.pid"
    done
    for i in $(seq "$n"); do
        for _ in $(seq 300); do grep -q "ready" "$DIR/workers/w$i.log" 2>/dev/null && break; sleep 0.1; done
        grep -q "ready" "$DIR/workers/w$i.log" || { echo "cluster: worker w$i did not start:" >&2; tail -20 "$DIR/workers/w$i.log" >&2; exit 1; }
    done
    echo "cluster: $n Celery worker(s) ready (logs in $DIR/workers/)"
}

cmd_up() {
    mkdir -p "$DIR/logs"
    start_postgres
    start_redis
    write_env
    [ "$WORKERS" -gt 0 ] && start_workers "$WORKERS"
    echo "cluster: up; source $DIR/env.sh to use it"
}

cmd_down() {
    stop_workers
    if [ -f "$DIR/redis/redis.pid" ]; then
        kill "$(cat "$DIR/redis/redis.pid")" 2>/dev/null || true
        rm -f "$DIR/redis/redis.pid"
    fi
    local bin
    if bin=$(pg_bin) && [ -f "$DIR/pg/data/PG_VERSION" ]; then
        as_pg "$bin/pg_ctl" -D "$DIR/pg/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    echo "cluster: down"
}

cmd_run() {
    # shellcheck disable=SC1091
    source "$DIR/env.sh"
    "$VENV_BIN/python" scripts/cluster_day.py "$@"
}

case "${1:-all}" in
    install) cmd_install ;;
    up) cmd_up ;;
    down) cmd_down ;;
    workers) mkdir -p "$DIR/logs"; start_workers "${2:?number of workers}" ;;
    run) shift; cmd_run "$@" ;;
    all) cmd_install; cmd_up; cmd_run --toolsets 4 ;;
    *) echo "usage: $0 [install|up|run [ARGS]|workers N|down]" >&2; exit 2 ;;
esac
