#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the test suite.
#
#   scripts/postgres-test-server.sh start DIR PORT   # prints the URL of database gonogo_test
#   scripts/postgres-test-server.sh stop DIR         # stops the server and deletes DIR
#
# Installs Debian's postgresql when initdb/pg_ctl are missing. PostgreSQL refuses to run
# as root, so as root the cluster belongs to the `postgres` system user. It listens on
# 127.0.0.1:PORT only, trusts local connections and skips fsync: test data, nothing else.
set -euo pipefail

MARKER=.gonogo-postgres-test  # only a DIR with this file is ever deleted by `stop`

die() { echo "postgres-test-server: $*" >&2; exit 1; }

# The folder holding every program we need. Debian keeps them off PATH, one folder per
# major version; a PATH entry may be a lone symlink, so follow it to its real folder.
find_bindir() {
    local candidates=() dir program ok
    if command -v pg_ctl >/dev/null 2>&1; then
        candidates+=("$(dirname "$(readlink -f "$(command -v pg_ctl)")")")
    fi
    while IFS= read -r dir; do
        candidates+=("$dir")
    done < <(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -Vr)
    for dir in "${candidates[@]}"; do
        ok=1
        for program in initdb pg_ctl pg_isready createdb; do
            [ -x "$dir/$program" ] || ok=0
        done
        if [ "$ok" = 1 ]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

ensure_installed() {
    if BINDIR=$(find_bindir); then
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 \
        || die "PostgreSQL (initdb, pg_ctl) is not installed and apt-get is not available"
    [ "$(id -u)" = 0 ] || die "PostgreSQL is not installed; installing it needs root (apt-get)"
    echo "postgres-test-server: installing postgresql with apt-get" >&2
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
    BINDIR=$(find_bindir) || die "postgresql was installed but initdb/pg_ctl were not found"
}

# Run a PostgreSQL program as the cluster's owner.
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start() {
    local dir=$1 port=$2
    [[ "$port" =~ ^[0-9]+$ ]] || die "PORT must be a number, not '$port'"
    ensure_installed
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [ -e "$dir/data" ] && die "$dir/data exists already; stop that cluster first"
    touch "$dir/$MARKER"
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user"
        chown -R postgres: "$dir"
    fi
    chmod 700 "$dir"
    as_owner test -w "$dir" \
        || die "the postgres user cannot write $dir (is a parent folder private to root?)"

    as_owner "$BINDIR/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 \
        --no-locale --no-sync >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    # Settings go into the cluster's own config: no quoting trouble on a command line.
    as_owner tee -a "$dir/data/postgresql.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
EOF
    if ! as_owner "$BINDIR/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >&2; then
        cat "$dir/postgres.log" >&2 || true
        die "the server did not start"
    fi
    local i ready=0
    for i in $(seq 1 100); do
        if as_owner "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$port"; then
            ready=1
            break
        fi
        sleep 0.1
    done
    if [ "$ready" = 0 ] || ! as_owner "$BINDIR/createdb" -h 127.0.0.1 -p "$port" -U postgres \
        gonogo_test; then
        # Never leave a half-started server behind.
        as_owner "$BINDIR/pg_ctl" -D "$dir/data" -m immediate -w stop >&2 || true
        cat "$dir/postgres.log" >&2 || true
        die "the server is not accepting connections on 127.0.0.1:$port"
    fi
    echo "postgresql://postgres@127.0.0.1:$port/gonogo_test"
}

stop() {
    local dir=$1
    [ -d "$dir" ] || return 0
    [ -e "$dir/$MARKER" ] || die "$dir was not made by this script; not touching it"
    if [ -f "$dir/data/postmaster.pid" ]; then
        BINDIR=$(find_bindir) || die "cannot find pg_ctl to stop the server in $dir"
        # Immediate: the data is thrown away anyway.
        as_owner "$BINDIR/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >&2 || true
    fi
    rm -rf "$dir"
}

case "${1:-}" in
    start)
        [ $# = 3 ] || die "usage: $0 start DIR PORT"
        start "$2" "$3"
        ;;
    stop)
        [ $# = 2 ] || die "usage: $0 stop DIR"
        stop "$2"
        ;;
    *)
        die "usage: $0 start DIR PORT | $0 stop DIR"
        ;;
esac
