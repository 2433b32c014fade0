#!/usr/bin/env bash
# Runs the whole pytest suite twice: on SQLite, then on a throw-away PostgreSQL cluster that this
# script initialises, starts and stops itself. Arguments are passed through to pytest:
#   scripts/test.sh                          # everything
#   scripts/test.sh tests/test_x.py -k foo   # a subset, on both databases
# Environment knobs: CMDB_TEST_PGPORT (default 5439), CMDB_TEST_DATABASES ("sqlite postgres").
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || { echo "test.sh: $PY missing: run 'make venv' first" >&2; exit 2; }

# The project's own modules compiled once here (incremental, about 1 s when nothing changed): the
# machines set PYTHONDONTWRITEBYTECODE=1, so otherwise every worker, command and test subprocess the
# suite starts compiles them again. The venv's dependencies were compiled when installed (make venv).
"$PY" -m compileall -q -j 0 -x '(^|/)(node_modules|data|\.venv|\.git|test-artifacts)(/|$)' . >/dev/null

PGPORT_TEST=${CMDB_TEST_PGPORT:-5439}
DATABASES=${CMDB_TEST_DATABASES:-sqlite postgres}

# Real services (redis-server, sshd) must run in these tests, never be skipped.
export CMDB_TEST_SERVICES=1
export DJANGO_DEBUG=true
# Hermetic: nothing from the caller's environment points the suite at a real deployment.
unset DATABASE_URL REDIS_URL CMDB_REPO_URL CMDB_DATA_DIR DJANGO_SETTINGS_MODULE

WORK=$(mktemp -d -t cmportal-test.XXXXXX)
PGROOT=""
PGBIN=""
AS_PG=()

log() { printf 'test.sh: %s\n' "$*"; }

stop_postgres() {
  [ -n "$PGROOT" ] && [ -d "$PGROOT/data" ] || return 0
  local pid=""
  [ -f "$PGROOT/data/postmaster.pid" ] && pid=$(head -1 "$PGROOT/data/postmaster.pid")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$PGROOT/data" -m fast -w -t 30 stop >/dev/null 2>&1 \
      || "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$PGROOT/data" -m immediate -w -t 10 stop >/dev/null 2>&1 \
      || kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then log "WARNING: postgres (pid $pid) still running"; else log "postgres stopped"; fi
  fi
}

cleanup() {
  local rc=$?
  stop_postgres
  rm -rf "$WORK"
  [ -n "$PGROOT" ] && rm -rf "$PGROOT"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_postgres() {
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
    log "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (make system-packages)" >&2
    return 1
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$PGPORT_TEST") 2>/dev/null; then
    log "port $PGPORT_TEST on 127.0.0.1 is already in use (another test run?); set CMDB_TEST_PGPORT" >&2
    return 1
  fi
  # The server refuses to run as root: the cluster belongs to user postgres. Its directory lives
  # outside $WORK (mode 700, root's) so that postgres can reach it.
  if [ "$(id -u)" = 0 ]; then
    AS_PG=(runuser -u postgres --)
    PGROOT=$(mktemp -d /tmp/cmportal-pg.XXXXXX)
    chown postgres: "$PGROOT"
  else
    AS_PG=()
    PGROOT=$(mktemp -d /tmp/cmportal-pg.XXXXXX)
  fi
  local t0=$SECONDS
  (cd / && "${AS_PG[@]}" "$PGBIN/initdb" -D "$PGROOT/data" -U postgres --auth=trust -E UTF8 \
      --locale=C.UTF-8 >"$PGROOT/initdb.log" 2>&1) \
    || { log "initdb failed:"; cat "$PGROOT/initdb.log" >&2; return 1; }
  (cd / && "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$PGROOT/data" -l "$PGROOT/server.log" -w -t 60 \
      -o "-p $PGPORT_TEST -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
      start >/dev/null) \
    || { log "postgres failed to start:"; cat "$PGROOT/server.log" >&2; return 1; }
  "$PGBIN/psql" -X -q -h 127.0.0.1 -p "$PGPORT_TEST" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -c 'CREATE DATABASE cmportal' >/dev/null \
    || { log "could not create database cmportal"; return 1; }
  log "postgres $("$PGBIN/postgres" --version | awk '{print $3}') up on 127.0.0.1:$PGPORT_TEST in $((SECONDS - t0))s ($PGROOT)"
}

declare -A RESULT=()
FAILED=0

run_pytest() { # name; uses RUN_ENV (extra env assignments) and PYTEST_ARGV
  local name=$1
  local data="$WORK/data-$name" t0=$SECONDS rc=0
  mkdir -p "$data"
  log "=== $name: pytest ${PYTEST_ARGV[*]:-(whole suite)} ==="
  env CMDB_DATA_DIR="$data" "${RUN_ENV[@]}" "$PY" -m pytest "${PYTEST_ARGV[@]}" || rc=$?
  local secs=$((SECONDS - t0))
  case $rc in
    0) RESULT[$name]="PASSED (${secs}s)" ;;
    5) RESULT[$name]="FAILED: pytest collected no tests (exit 5, ${secs}s)"; FAILED=1 ;;
    *) RESULT[$name]="FAILED: pytest exit $rc (${secs}s)"; FAILED=1 ;;
  esac
  log "=== $name: ${RESULT[$name]} ==="
}

PYTEST_ARGV=("$@")

# --- docker-compose.yml against the Compose specification (schema ships with check-jsonschema) -----
if [ ! -f docker-compose.yml ]; then
  RESULT[compose]="FAILED: docker-compose.yml missing"
  FAILED=1
elif "$ROOT/.venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml; then
  RESULT[compose]="PASSED"
else
  RESULT[compose]="FAILED: docker-compose.yml does not match the Compose spec"
  FAILED=1
fi

for db in $DATABASES; do
  case $db in
    sqlite)
      RUN_ENV=()
      run_pytest sqlite
      ;;
    postgres)
      if start_postgres; then
        RUN_ENV=("DATABASE_URL=postgres://postgres@127.0.0.1:$PGPORT_TEST/cmportal")
        run_pytest postgres
      else
        RESULT[postgres]="FAILED: could not start PostgreSQL"
        FAILED=1
      fi
      stop_postgres
      ;;
    *) log "unknown database '$db' in CMDB_TEST_DATABASES" >&2; exit 2 ;;
  esac
done

echo
log "summary"
log "  compose spec : ${RESULT[compose]}"
for db in $DATABASES; do
  printf 'test.sh:   %-12s : %s\n' "$db" "${RESULT[$db]:-not run}"
done
if [ "$FAILED" = 0 ]; then log "ALL RUNS PASSED"; else log "SOME RUNS FAILED"; fi
exit "$FAILED"
