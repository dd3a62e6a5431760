# shellcheck shell=bash
# Shared by bench/run.sh: process bookkeeping, nginx, readiness waits. Sourced, not run.
# Every process started here goes into TRACKED (its own process group: started through
# `setsid` or `timeout`), and `cleanup` (the EXIT trap) stops whatever is still there.

TRACKED=()        # process-group leaders still running
NGINX_PID=""      # nginx master (a group leader: its worker is in its group)

# the log goes to the script's own stderr, even from a trap that fires while a command's
# output is redirected elsewhere
exec {LOG_FD}>&2
log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&"$LOG_FD"; }
die() { log "ERROR: $*"; exit 1; }

track() { TRACKED+=("$1"); }
untrack() {
    local keep=() p
    for p in "${TRACKED[@]}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
    TRACKED=("${keep[@]}")
}

# stop_group PID [GRACE_SECONDS]: CONT (a SIGSTOPped process cannot exit on TERM), TERM,
# then KILL what is left of the process group after the grace period.
stop_group() {
    local pid=$1 grace=${2:-5} i
    kill -0 "$pid" 2>/dev/null || { untrack "$pid"; return 0; }
    kill -CONT -- "-$pid" 2>/dev/null || true
    kill -TERM -- "-$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    untrack "$pid"
}

cleanup() {
    local status=$? p
    trap - EXIT INT TERM
    for p in "${TRACKED[@]}"; do
        log "stopping process group $p"
        stop_group "$p" 3
    done
    [[ -n "${BENCH_TMP:-}" && -d "$BENCH_TMP" ]] && rm -rf "$BENCH_TMP"
    exit "$status"
}

# start_bg NAME LOGFILE CMD...: start CMD in its own session (so its group can be killed)
# in the background; sets STARTED_PID.
start_bg() {
    local name=$1 logfile=$2
    shift 2
    setsid "$@" >"$logfile" 2>&1 &
    STARTED_PID=$!
    track "$STARTED_PID"
    log "started $name (pid $STARTED_PID)"
}

# run_bounded LIMIT_SECONDS CMD...: run CMD in the foreground but bounded: `timeout` puts it
# in its own process group, TERM at the limit, KILL 5 s later. Returns CMD's status.
run_bounded() {
    local limit=$1 pid status=0
    shift
    timeout -k 5 "$limit" "$@" &
    pid=$!
    track "$pid"
    wait "$pid" || status=$?
    untrack "$pid"
    return "$status"
}

free_port() {
    "$GONOGO_PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_http URL SECONDS: until URL answers 200.
wait_http() {
    local url=$1 limit=$2 i
    for ((i = 0; i < limit * 10; i++)); do
        if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    die "$url did not answer within ${limit}s"
}

# start_nginx PORT [LOCATIONS_FILE]: nginx from Debian, our own config in $BENCH_TMP/nginx, serving
# a 100-byte file on 127.0.0.1:PORT, master and worker pinned to CPU $SERVER_CPU. Sets NGINX_PID.
# With LOCATIONS_FILE (bench/nginx_journey.conf) the server block includes that file instead of
# serving files, and nginx is ready when its /static answers.
start_nginx() {
    local port=$1 locations=${2:-} dir="${BENCH_TMP:?}/nginx"
    mkdir -p "$dir/www" "$dir/tmp" "$dir/logs"
    head -c 100 /dev/zero | tr '\0' 'x' >"$dir/www/index.html"
    # also 100 bytes, for the runs whose responses are checked (EXPECT=1): a field deep in it,
    # the text looked for at its very end
    printf '%s' '{"status":"ok","items":[{"id":1},{"id":3,"tags":["a","b"]}],"pad":"xxxxxxxxxxxxxxxxxxxx","end":true}' \
        >"$dir/www/item.json"
    # NGINX_LEAN=1 (benchmarks 1 and 2): the file's descriptor and metadata are cached (no
    # open/fstat/close per request) and the response carries no version or ETag, so that the
    # server costs as little per request as it can and the generators, not nginx, are compared.
    # The proxy benchmark keeps the plain configuration its target was set against (NGINX_LEAN=0).
    local lean="" site="location / { }"
    [[ -z "$locations" ]] || site="include $locations;"
    if [[ "${NGINX_LEAN:-1}" == 1 ]]; then
        lean="    open_file_cache max=16 inactive=600s;
    open_file_cache_valid 600s;
    server_tokens off;
    etag off;"
    fi
    cat >"$dir/nginx.conf" <<EOF
# gonogo bench: one worker, no access log, long keep-alive, cached file, loopback only.
worker_processes 1;
daemon off;
master_process on;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 120s;
$lean
    client_body_temp_path $dir/tmp;
    proxy_temp_path $dir/tmp;
    fastcgi_temp_path $dir/tmp;
    uwsgi_temp_path $dir/tmp;
    scgi_temp_path $dir/tmp;
    server {
        listen 127.0.0.1:$port backlog=4096;
        root $dir/www;
        $site
    }
}
EOF
    start_bg nginx "$dir/logs/stdout.log" taskset -c "$SERVER_CPU" nginx -e "$dir/logs/error.log" -p "$dir" -c "$dir/nginx.conf"
    NGINX_PID=$STARTED_PID
    if [[ -n "$locations" ]]; then
        wait_http "http://127.0.0.1:$port/static" 10
        log "nginx ready on 127.0.0.1:$port with $locations (master $NGINX_PID, worker $(nginx_worker_pid))"
        return 0
    fi
    wait_http "http://127.0.0.1:$port/index.html" 10
    local size
    size=$(curl -fsS "http://127.0.0.1:$port/index.html" | wc -c)
    [[ "$size" == 100 ]] || die "nginx serves $size bytes, expected 100"
    log "nginx ready on 127.0.0.1:$port (master $NGINX_PID, worker $(nginx_worker_pid))"
}

# The nginx worker: the only child of the master (pidfile).
nginx_worker_pid() {
    local master children
    master=$(cat "$BENCH_TMP/nginx/nginx.pid")
    children=$(pgrep -P "$master")
    [[ $(wc -w <<<"$children") == 1 ]] || die "expected one nginx worker under $master, got: $children"
    echo "$children"
}

# cpu_ticks PID: user+system CPU time of a process so far, in clock ticks (getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# core_busy CPU: busy (non-idle, non-iowait) ticks of one core so far, from /proc/stat
core_busy() { awk -v cpu="cpu$1" '$1 == cpu {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

stop_nginx() {
    [[ -n "$NGINX_PID" ]] || return 0
    stop_group "$NGINX_PID" 5
    log "nginx stopped"
    NGINX_PID=""
}
