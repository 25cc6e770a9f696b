#!/bin/sh
# Container entrypoint of every CRM service; SERVICE_PACKAGE names the package (e.g. scoring_service).
#   migrate-and-serve (default)  apply migrations, then serve the API on 0.0.0.0:8000
#   migrate                      apply migrations and exit (Kubernetes initContainer or Job)
#   serve                        serve the API only (migrations ran elsewhere)
#   anything else                run it as a command, e.g. `python -m crm_shared.apikeys new ...`
set -eu
: "${SERVICE_PACKAGE:?set SERVICE_PACKAGE to the service package, e.g. profile_service}"

migrate() {
    python -m "${SERVICE_PACKAGE}.migrate"
}

serve() {
    # exec: uvicorn replaces the shell, so it receives the SIGTERM of `docker stop` or a pod
    # shutdown and drains. Access logs are off: the service writes its own JSON logs and
    # metrics, and uvicorn's plain-text lines would print query strings that may hold personal
    # data. The graceful-shutdown bound stays under Kubernetes' default 30 s grace period.
    # Idle keep-alive connections are kept longer than a load balancer or ingress keeps its
    # own (60 s is common): a server closing first races the proxy's next request on that
    # connection, which then fails without ever reaching the service.
    exec python -m uvicorn --factory "${SERVICE_PACKAGE}.app:create_app" \
        --host 0.0.0.0 --port 8000 --no-access-log --timeout-graceful-shutdown 20 \
        --timeout-keep-alive "${HTTP_KEEP_ALIVE_SECONDS:-75}"
}

case "${1:-migrate-and-serve}" in
    migrate-and-serve) migrate; serve ;;
    migrate) migrate ;;
    serve) serve ;;
    *) exec "$@" ;;
esac
