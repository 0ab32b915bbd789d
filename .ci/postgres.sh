#!/usr/bin/env bash
# Start a throwaway PostgreSQL for the demo target's tests and print its URL:
#   export LOADACTION_TEST_DATABASE_URL="$(.ci/postgres.sh)"
# On a fresh Debian machine (as root) it installs PostgreSQL first. The
# instance lives in $LOADACTION_PG_DIR (default /tmp/loadaction-pg), listens on
# 127.0.0.1 only, on a free port, with trust auth: fine for a local throwaway,
# never for anything else. Running it again reuses the running instance.
# pg_stat_statements is preloaded and created in the database, for the
# postgres probe's tests (they read its rows).
# `.ci/postgres.sh stop` stops it. Only the URL goes to stdout.
set -euo pipefail

DIR="${LOADACTION_PG_DIR:-${TMPDIR:-/tmp}/loadaction-pg}"
DB=loadaction

die() { echo "postgres.sh: $*" >&2; exit 1; }

find_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 \
    && { dirname "$(readlink -f "$(command -v initdb)")"; return 0; }
  return 1
}

BIN="$(find_bindir || true)"
if [ -z "$BIN" ]; then
  [ "$(id -u)" = 0 ] || die "PostgreSQL is not installed and installing it needs root"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq postgresql >/dev/null
  BIN="$(find_bindir)" || die "PostgreSQL binaries not found after installing"
fi

# initdb and postgres refuse to run as root: run them as `postgres` then.
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
  as_pg() { runuser -u postgres -- "$@"; }
  OWNER=postgres
else
  as_pg() { "$@"; }
  OWNER="$(id -un)"
fi

running() { [ -f "$DIR/port" ] && as_pg "$BIN/pg_ctl" status -D "$DIR/data" >/dev/null 2>&1; }

if [ "${1:-}" = "stop" ]; then
  if running; then as_pg "$BIN/pg_ctl" stop -D "$DIR/data" -m fast -w >/dev/null; fi
  exit 0
fi

psql_pg() { as_pg "$BIN/psql" -h 127.0.0.1 -p "$(cat "$DIR/port")" -U postgres -d postgres -qtAX "$@"; }

# The postgres probe reads pg_stat_statements, which must be preloaded, and
# each demo target opens its whole pool (64) at start, so a test that holds two
# of them beside the probes needs more than the default 100 connections: an
# instance started without these settings (by an older copy of this script) is
# restarted. It keeps its port, so a URL exported before stays good.
MAX_CONNECTIONS=300
KEEP_PORT=
if running && { ! psql_pg -c "SHOW shared_preload_libraries" | grep -q pg_stat_statements \
                || [ "$(psql_pg -c "SHOW max_connections")" -lt "$MAX_CONNECTIONS" ]; }; then
  KEEP_PORT="$(cat "$DIR/port")"
  as_pg "$BIN/pg_ctl" stop -D "$DIR/data" -m fast -w >/dev/null
fi

if ! running; then
  mkdir -p "$DIR"
  chown "$OWNER" "$DIR"
  chmod 700 "$DIR"
  if [ ! -f "$DIR/data/PG_VERSION" ]; then
    rm -rf "$DIR/data"
    as_pg "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust --encoding=UTF8 \
      --no-locale >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
  fi
  PORT="${KEEP_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
  # Durability off: a throwaway test cluster trades crash safety for speed.
  as_pg "$BIN/pg_ctl" start -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
    -o "-k $DIR -h 127.0.0.1 -p $PORT -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_preload_libraries=pg_stat_statements -c max_connections=$MAX_CONNECTIONS" \
    >/dev/null || { tail -n 20 "$DIR/server.log" >&2; die "could not start PostgreSQL"; }
  echo "$PORT" >"$DIR/port"
fi
PORT="$(cat "$DIR/port")"

if [ "$(psql_pg -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
  psql_pg -c "CREATE DATABASE $DB" >/dev/null
fi
as_pg "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d "$DB" -qtAX \
  -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
echo "postgresql://postgres@127.0.0.1:$PORT/$DB"
