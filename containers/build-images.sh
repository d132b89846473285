#!/usr/bin/env bash
# Builds the project's images from containers/service.Dockerfile (per service the build argument
# and target that docker-compose.yml's build sections name), tagged as docker-compose.yml names
# them (fastapi-services/<service>:local), after making sure the upstream base images are there
# (containers/substitutes/build.sh: present, pulled, or a local substitute when pulls fail).
#
# On a build machine whose HTTPS goes through a TLS-inspecting proxy, the certificates of the
# machine's CA bundle (SSL_CERT_FILE, default /etc/ssl/certs/ca-certificates.crt) that the
# Python base image lacks are passed as the BUILD_EXTRA_CA_CERTS build argument: the
# Dockerfile trusts them in the build stage only, never in the runtime image. Elsewhere that
# argument is empty and the build is the one `docker compose build` does.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
log() { printf '[images] %s\n' "$*" >&2; }

containers/substitutes/build.sh

dockerfile=containers/service.Dockerfile
python_image="$(sed -n -E 's/^ARG PYTHON_IMAGE=(.+)$/\1/p' "$dockerfile")"
machine_bundle="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}"
extra_certs=""
if [ -r "$machine_bundle" ]; then
    extra_certs="$(docker run --rm --network none "$python_image" \
        cat /etc/ssl/certs/ca-certificates.crt 2>/dev/null \
        | python3 -c '
import re, sys
pem = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
image = set(pem.findall(sys.stdin.read()))
with open(sys.argv[1]) as machine:
    print("\n".join(c for c in pem.findall(machine.read()) if c not in image))
' "$machine_bundle")"
fi
[ -z "$extra_certs" ] || log "trusting $(grep -c 'BEGIN CERT' <<< "$extra_certs") machine CA certificate(s) in the build stage"

for service in auth-service items-service; do
    log "building fastapi-services/$service:local"
    start=$SECONDS
    # Classic builder (BuildKit would pull its frontend image); host network for downloads.
    if ! DOCKER_BUILDKIT=0 docker build --network host --quiet \
        --build-arg "SERVICE=$service" --build-arg "BUILD_EXTRA_CA_CERTS=$extra_certs" \
        -f "$dockerfile" --target "$service" -t "fastapi-services/$service:local" . \
        > "${TMPDIR:-/tmp}/build-$service.log" 2>&1; then
        tail -n 40 "${TMPDIR:-/tmp}/build-$service.log" >&2
        log "building $service failed"
        exit 1
    fi
    log "built fastapi-services/$service:local in $((SECONDS - start)) s"
done

# What each service image adds above its base image: its own `docker history` entries.
limit=$((150 * 1000 * 1000))
base_entries="$(docker history -q "$python_image" | wc -l)"
for service in auth-service items-service; do
    image="fastapi-services/$service:local"
    entries="$(docker history -q "$image" | wc -l)"
    added="$(docker history --human=false --format '{{.Size}}' "$image" \
        | head -n "$((entries - base_entries))" | awk '{s += $1} END {print s + 0}')"
    log "$image adds $((added / 1000000)) MB above $python_image (limit $((limit / 1000000)) MB)"
    if [ "$added" -ge "$limit" ]; then
        log "$image is too large"
        exit 1
    fi
done
