#!/usr/bin/env bash
# make compose-test: the container path end to end, on the unchanged docker-compose.yml.
#
#   1. the images: upstream ones present, pulled or substituted (containers/substitutes/),
#      the services' built from containers/service.Dockerfile (containers/build-images.sh);
#   2. the stack up under a project name of its own, every container healthy;
#   3. the end-to-end suite (tests-e2e) through the compose gateway, reached on the compose
#      network from a source address per client;
#   4. the compose checks (tests-e2e/tests/test_compose_stack.py): data kept over down/up, a
#      deletion made while items-service is stopped, per-replica request shares with
#      items-service x3 and auth-service x2, a replica stopped under load;
#   5. down with the volumes, also on failure.
# Needs a Docker engine (DOCKER_HOST or the default socket) and root for the client
# addresses on the bridge (`ip address add`). Every wait is bounded; a failure prints the
# containers' logs.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
project="${COMPOSE_TEST_PROJECT:-fastapi-services-compose-test}"
work="$root/.data/compose-test"
env_file="$work/env"
uv=.tools/bin/uv
helper=("$uv" run --locked python -m e2e.compose --project "$project" --env-file "$env_file")
current=""
step() { current="$*"; printf '\n=== compose-test: %s ===\n' "$*"; }
# Each pytest run's output is kept in $work; after a failure the containers' logs come first
# and the failed tests last, so that the end of the output (all a CI log may keep) names them.
run_pytest() {
    local out="$1"
    shift
    "$uv" run --locked pytest -p no:cacheprovider -rfE "$@" 2>&1 | tee "$work/$out"
}

step "images"
containers/build-images.sh 2> >(grep --line-buffered -v -E 'legacy builder is deprecated|BuildKit is currently disabled|environment-variable' >&2)

step "stack up ($project)"
mkdir -p "$work"
rm -f "$work"/pytest-*.log
"${helper[@]}" down --volumes > /dev/null 2>&1 || true  # what an interrupted run left
gateway_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"${helper[@]}" write-env "GATEWAY_PORT=$gateway_port"
cleanup() {
    status=$?
    failed_step="$current"
    if [ "$status" -ne 0 ]; then
        "${helper[@]}" logs || true
    fi
    step "down"
    "${helper[@]}" down --volumes || true
    if [ "$status" -ne 0 ]; then
        printf '\n=== compose-test FAILED in: %s ===\n' "$failed_step"
        grep -h -E '^(FAILED|ERROR) ' "$work"/pytest-*.log 2>/dev/null || true
    fi
    exit "$status"
}
trap cleanup EXIT
admin_user="admin_$(python3 -c 'import secrets; print(secrets.token_hex(4))')"
admin_password="Adm1n!$(python3 -c 'import secrets; print(secrets.token_urlsafe(12))')"
exports="$("${helper[@]}" up --admin "$admin_user" "$admin_password")"
eval "$exports"
echo "stack healthy; gateway on $E2E_BASE_URL (published on 127.0.0.1:$gateway_port)"
curl -fsS --max-time 5 -o /dev/null "http://127.0.0.1:$gateway_port/.well-known/jwks.json"
echo "published port answers"

step "end-to-end suite through the compose gateway"
E2E_ADMIN_USERNAME="$admin_user" E2E_ADMIN_PASSWORD="$admin_password" \
    run_pytest pytest-e2e.log tests-e2e/tests -q

step "compose checks: restart, deletion while stopped, replica shares, replica stop"
E2E_COMPOSE_PROJECT="$project" E2E_COMPOSE_ENV_FILE="$env_file" \
    run_pytest pytest-compose.log tests-e2e/tests/test_compose_stack.py -v -s
