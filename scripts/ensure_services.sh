#!/usr/bin/env bash
# PostgreSQL and Redis for `make cluster` and the tests that need them, from Debian's packages.
#
#   scripts/ensure_services.sh                          install postgresql + redis-server when missing
#   scripts/ensure_services.sh postgres start DIR PORT [DB...]
#                                                       a private server: data in DIR/data, TCP on
#                                                       127.0.0.1:PORT only, superuser airflow/airflow,
#                                                       the databases DB... created when missing
#   scripts/ensure_services.sh postgres stop DIR
#   scripts/ensure_services.sh redis start DIR PORT     a private Redis on 127.0.0.1:PORT, no persistence
#   scripts/ensure_services.sh redis stop DIR
#
# Idempotent and quiet when everything is already there. The servers run from the project's own
# folders as daemons with pid files (never the system services the packages install); `start` on a
# folder whose server is already running reuses it. PostgreSQL refuses to run as root, so as root
# it runs as the `postgres` user the package creates: DIR must then be reachable by that user
# (not under a 0700 folder such as /tmp/pytest-of-root).
set -euo pipefail

LOG=/tmp/ensure_services.$(id -u).log
PKGS=(postgresql redis-server)

die() {
  echo "ensure_services: $*" >&2
  exit 1
}

pg_bindir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$dir" ] && [ -x "$dir/pg_ctl" ] || return 1
  echo "$dir"
}

installed() {
  pg_bindir >/dev/null && command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1
}

install() {
  installed && return 0
  [ "$(id -u)" = "0" ] || die "PostgreSQL or Redis is missing and only root can install them: apt-get install ${PKGS[*]}"
  echo "ensure_services: installing Debian's ${PKGS[*]} (log: $LOG)"
  export DEBIAN_FRONTEND=noninteractive
  # The packages would start their system services; this project runs its own servers instead.
  # policy-rc.d (Debian's hook for that) says "do not start" for the duration of the install.
  local policy=/usr/sbin/policy-rc.d made_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
  fi
  local rc=0
  if ! apt-get install -y -q --no-install-recommends "${PKGS[@]}" >"$LOG" 2>&1; then
    apt-get update -q >>"$LOG" 2>&1 || true
    apt-get install -y -q --no-install-recommends "${PKGS[@]}" >>"$LOG" 2>&1 || rc=$?
  fi
  [ -n "$made_policy" ] && rm -f "$policy"
  if [ "$rc" != 0 ] || ! installed; then
    tail -n 20 "$LOG" >&2
    die "could not install ${PKGS[*]}"
  fi
}

# Run a PostgreSQL server program as the owner of the data folder (never root).
as_pg() {
  if [ "$(id -u)" = "0" ]; then
    setpriv --reuid=postgres --regid=postgres --clear-groups -- "$@"
  else
    "$@"
  fi
}

pg_start() {
  local dir=$1 port=$2
  shift 2
  local bin data
  bin=$(pg_bindir) || die "PostgreSQL is not installed (run scripts/ensure_services.sh)"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  data="$dir/data"
  if [ "$(id -u)" = "0" ]; then
    chown postgres:postgres "$dir"
    setpriv --reuid=postgres --regid=postgres --clear-groups -- test -x "$dir" ||
      die "$dir is not reachable by the postgres user (a parent folder is private); use another folder"
  fi
  if [ ! -s "$data/PG_VERSION" ]; then
    local pwfile="$dir/.pwfile"
    echo airflow >"$pwfile"
    [ "$(id -u)" = "0" ] && chown postgres:postgres "$pwfile"
    as_pg "$bin/initdb" -D "$data" -U airflow --pwfile="$pwfile" --auth=scram-sha-256 \
      --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || {
      tail -n 20 "$dir/initdb.log" >&2
      die "initdb failed in $data"
    }
    rm -f "$pwfile"
  fi
  if ! as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    # TCP on loopback only, no Unix socket (no shared /var/run/postgresql), small footprint
    # (make cluster peaks at about 20 connections), and no fsync: a throw-away server for a local
    # cluster and the tests, where a crash loses nothing worth keeping.
    as_pg "$bin/pg_ctl" -D "$data" -l "$dir/postgres.log" -w -t 60 start -o \
      "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='' -c max_connections=200 -c shared_buffers=64MB -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
      >/dev/null || {
      tail -n 20 "$dir/postgres.log" >&2
      die "PostgreSQL did not start on 127.0.0.1:$port"
    }
  fi
  local db
  for db in "$@"; do
    [[ "$db" =~ ^[a-z_][a-z0-9_]*$ ]] || die "not a plain database name: $db"
    if [ -z "$(PGPASSWORD=airflow psql -h 127.0.0.1 -p "$port" -U airflow -d postgres -Atqc "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
      PGPASSWORD=airflow psql -h 127.0.0.1 -p "$port" -U airflow -d postgres -qc "CREATE DATABASE \"$db\"" >/dev/null
    fi
  done
}

pg_stop() {
  local dir=$1 bin
  bin=$(pg_bindir) || return 0
  [ -s "$dir/data/postmaster.pid" ] || return 0
  as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
}

redis_start() {
  local dir=$1 port=$2
  command -v redis-server >/dev/null 2>&1 || die "Redis is not installed (run scripts/ensure_services.sh)"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ -s "$dir/redis.pid" ] && kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null; then
    return 0
  fi
  # A broker, not a store: no snapshots, no append-only file.
  redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --save "" --appendonly no
  local i
  for i in $(seq 1 100); do
    if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
      return 0
    fi
    sleep 0.1
  done
  tail -n 20 "$dir/redis.log" >&2
  die "Redis did not answer on 127.0.0.1:$port"
}

redis_stop() {
  local dir=$1 pid i
  [ -s "$dir/redis.pid" ] || return 0
  pid=$(cat "$dir/redis.pid")
  kill "$pid" 2>/dev/null || return 0
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

case "${1:-install}" in
  install) install ;;
  postgres)
    case "${2:-}" in
      start) [ $# -ge 4 ] || die "usage: $0 postgres start DIR PORT [DB...]"; install; pg_start "${@:3}" ;;
      stop) [ $# -eq 3 ] || die "usage: $0 postgres stop DIR"; pg_stop "$3" ;;
      *) die "usage: $0 postgres start|stop DIR ..." ;;
    esac
    ;;
  redis)
    case "${2:-}" in
      start) [ $# -eq 4 ] || die "usage: $0 redis start DIR PORT"; install; redis_start "$3" "$4" ;;
      stop) [ $# -eq 3 ] || die "usage: $0 redis stop DIR"; redis_stop "$3" ;;
      *) die "usage: $0 redis start|stop DIR ..." ;;
    esac
    ;;
  *) die "unknown command $1 (install | postgres start|stop | redis start|stop)" ;;
esac
