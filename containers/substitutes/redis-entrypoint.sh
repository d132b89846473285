#!/bin/sh
# As upstream: `redis-server` without a config file, protected mode off unless the arguments
# say otherwise (later arguments win); arguments starting with "-" go to redis-server.
set -eu
case "${1:-}" in -*) set -- redis-server "$@" ;; esac
if [ "${1:-}" = redis-server ]; then
    shift
    set -- redis-server --protected-mode no "$@"
fi
exec "$@"
