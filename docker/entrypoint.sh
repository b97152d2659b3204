#!/usr/bin/env bash
# Container roles: `web` (migrations + daphne, LUMINIDE_WEB_PROCESSES processes) or `worker` (one Celery worker = one GPU).
set -euo pipefail
case "${1:-web}" in
  web)
    python manage.py migrate --noinput
    if [ "${LUMINIDE_DEMO:-true}" = "true" ]; then python manage.py bootstrap_demo; fi
    exec python -m luminide.serve --host 0.0.0.0 --port 8000
    ;;
  worker)
    exec celery -A luminide worker -Q "${LUMINIDE_QUEUES:-gpu,default}" -c 1 \
      --hostname "${LUMINIDE_NODE_NAME:-worker@%h}" -l INFO
    ;;
  *)
    exec "$@"
    ;;
esac
