#!/usr/bin/env bash
# A throwaway PostgreSQL server in the foreground, for the resilience plan:
#
#   scripts/postgres.sh PORT
#
# Debian's server binaries; a fresh cluster in a temporary folder (deleted on exit), trusting
# local connections, listening on 127.0.0.1:PORT. PostgreSQL refuses to run as root, so as
# root the cluster belongs to the `postgres` system user.
set -euo pipefail
PORT=${1:?usage: postgres.sh PORT}
BINDIR=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -Vr | head -1)
[ -x "$BINDIR/postgres" ] || { echo "postgres.sh: PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }
DIR=$(mktemp -d /tmp/docservice-pg-XXXXXX)
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres: "$DIR"
cleanup() { [ -n "${SERVER:-}" ] && kill -TERM "$SERVER" 2>/dev/null && wait "$SERVER"; rm -rf "$DIR"; }
trap cleanup EXIT
trap 'exit 0' TERM INT
as_owner "$BINDIR/initdb" -D "$DIR/data" --auth=trust --username=postgres --encoding=UTF8 >/dev/null
as_owner "$BINDIR/postgres" -D "$DIR/data" -p "$PORT" -k "$DIR" -c listen_addresses=127.0.0.1 &
SERVER=$!
wait "$SERVER"
