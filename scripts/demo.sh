#!/usr/bin/env bash
# make demo: serve the portal on the demo configuration repository with SQLite and an embedded
# queue (kombu's filesystem transport): no database, broker or other server is needed.
# A Celery worker and beat run beside the web server and stop with it (Ctrl-C).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
PY="$ROOT/.venv/bin/python"

export DJANGO_DEBUG=true
export CMDB_DATA_DIR="${CMDB_DATA_DIR:-$ROOT/data/demo}"
export CMDB_DEMO_SOURCE="${CMDB_DEMO_SOURCE:-$ROOT/data/demo-source}"
export CMDB_REPO_URL="$CMDB_DEMO_SOURCE/origin.git"
# The demo's machines use the local transport; their manifests name roots relative to this folder.
export CMDB_LOCAL_ROOT_BASE="$CMDB_DEMO_SOURCE"
export CMDB_WEBHOOK_SECRET="${CMDB_WEBHOOK_SECRET:-demo-webhook-secret}"
# Deploys write only where this names the environment: in the demo, the local trees standing for machines.
export CMDB_DEPLOY_ENVIRONMENTS="${CMDB_DEPLOY_ENVIRONMENTS:-production,test}"
export CMDB_METRICS_TOKEN="${CMDB_METRICS_TOKEN:-demo-metrics-token}"
export DJANGO_EMAIL_BACKEND="django.core.mail.backends.console.EmailBackend"
export DJANGO_SECURE_COOKIES=false
unset DATABASE_URL REDIS_URL
HOST="${DEMO_HOST:-127.0.0.1}"
PORT="${DEMO_PORT:-8000}"

if [ ! -d "$CMDB_DEMO_SOURCE/origin.git" ]; then
  echo "demo: building the demo configuration repository in $CMDB_DEMO_SOURCE"
  "$PY" demo/build_demo_repo.py "$CMDB_DEMO_SOURCE" >/dev/null
fi
mkdir -p "$CMDB_DATA_DIR"
"$PY" manage.py migrate --noinput -v0
"$PY" manage.py demo_users --password demo
"$PY" manage.py cmdb_sync

pids=()
cleanup() {
  trap - EXIT INT TERM HUP
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # A worker on the filesystem transport can take a while to finish its warm shutdown.
  for _ in $(seq 50); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  pkill -KILL -P "$$" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM HUP

"$PY" -m celery -A portal worker --loglevel=WARNING --concurrency=2 --hostname="demo@%h" \
  >"$CMDB_DATA_DIR/worker.log" 2>&1 &
pids+=($!)
"$PY" -m celery -A portal beat --loglevel=WARNING --schedule="$CMDB_DATA_DIR/celerybeat-schedule" \
  >"$CMDB_DATA_DIR/beat.log" 2>&1 &
pids+=($!)

cat <<MSG

  CM portal demo
  URL:    http://$HOST:$PORT/
  Login:  demo / demo   (staff; also viewer, requester, approver, approver2 — password demo)
  API:    http://$HOST:$PORT/api/docs/   (tokens: your account page, http://$HOST:$PORT/account/)
  Metrics: curl -H 'Authorization: Bearer $CMDB_METRICS_TOKEN' http://$HOST:$PORT/metrics
  Worker and beat logs: $CMDB_DATA_DIR/{worker,beat}.log   (Ctrl-C stops everything)

MSG
"$PY" manage.py runserver --noreload "$HOST:$PORT" &
pids+=($!)
wait "${pids[-1]}"
