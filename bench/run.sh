#!/usr/bin/env bash
# The benchmarks of issues 3 and 11, on this machine, all traffic to 127.0.0.1 only.
#
#   bench/run.sh [all|throughput|omission|journeys|journey3|journey-omission|proxy]
#                                                               (default: all; proxy is not in all)
#
# Environment: REPS (3) runs of each tool per benchmark, alternating tools; DURATION (10)
# seconds per load run; GEN_CPU (0) / SERVER_CPU (1) the cores the load generator and the
# server are pinned to; JOURNEY_ITERATIONS (100) and JOURNEY_CONCURRENCY (10); PROXY_RATE (2000)
# requests/s of the proxy scenario's latency runs; PROXY_CPU / PROXY_NGINX_CPU (both SERVER_CPU):
# the cores of gonogo's fault proxy and of nginx in that scenario (bench/RESULTS.md, section 4);
# PROXY_PATHS ("direct relay asyncio") what it compares, and "before" if PROXY_BEFORE_SRC is another
# checkout's src/ (e.g. `git archive OLD_COMMIT src | tar -x -C DIR`): its fault proxy, measured the same way.
# The 3-step journey against nginx (bench/nginx_journey.conf; bench/RESULTS.md, sections 5 and 6):
# journey3 runs 50 closed-model users of gonogo (`gonogo run` of a plan with a `load` check of
# `journeys`), Locust FastHttpUser and wrk with bench/wrk_journey.lua; journey-omission stops nginx
# for 500 ms during an open-model gonogo run of JOURNEY_RATE (100) iterations/s, and a Locust run
# asking the same, the stall JOURNEY_PAUSE_AFTER (5) seconds after the generator's launch.
# NGINX_LEAN (1, but 0 in the proxy scenario): nginx caches the file's descriptor and sends no
# version or ETag header (bench/lib.sh, start_nginx). EXPECT (0): 1 adds to the throughput
# benchmark gonogo runs on a 100-byte JSON file: unchecked (gonogo-item), and with every response
# checked (`expect`): gonogo-body (status and a text at the body's end) and gonogo-json (status
# and two JSON fields).
#
# Installs what is missing (Debian: nginx, wrk, time, curl; Locust in bench/.venv-locust;
# gonogo's .venv via `make`), writes raw outputs to bench/results/<run>/ (bench/results/latest
# points at the newest) and prints the summary (summary.md, summary.json there).
# Every process it starts is stopped when it ends, whatever the way it ends.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

MODE=${1:-all}
case "$MODE" in all | throughput | omission | journeys | journey3 | journey-omission | proxy) ;; *)
    echo "usage: $0 [all|throughput|omission|journeys|journey3|journey-omission|proxy]" >&2
    exit 2
    ;;
esac
REPS=${REPS:-3}
EXPECT_RUNS=""
[[ "${EXPECT:-0}" == 1 ]] && EXPECT_RUNS="gonogo-item gonogo-body gonogo-json"
DURATION=${DURATION:-10}
GEN_CPU=${GEN_CPU:-0}
SERVER_CPU=${SERVER_CPU:-1}
USERS=50
OPEN_RATE=5000
PAUSE_AFTER=${PAUSE_AFTER:-3.3} # seconds after the generator is launched (its start-up included)
PAUSE_FOR=0.5
JOURNEY_ITERATIONS=${JOURNEY_ITERATIONS:-100}
JOURNEY_CONCURRENCY=${JOURNEY_CONCURRENCY:-10}
JOURNEY_RATE=${JOURNEY_RATE:-100}
JOURNEY_PAUSE_AFTER=${JOURNEY_PAUSE_AFTER:-5} # `gonogo run` starts its load ~2 s after its launch
PROXY_RATE=${PROXY_RATE:-2000}
PROXY_CPU=${PROXY_CPU:-$SERVER_CPU}
PROXY_NGINX_CPU=${PROXY_NGINX_CPU:-$SERVER_CPU}
PROXY_PATHS=${PROXY_PATHS:-direct relay asyncio${PROXY_BEFORE_SRC:+ before}}
LOCUST_VERSION=${LOCUST_VERSION:-2.47.0}
GONOGO_PY=$ROOT/.venv/bin/python
LOCUST=$BENCH_DIR/.venv-locust/bin/locust
LIMIT=$((DURATION + 60)) # hard bound of any one generator run, seconds

BENCH_TMP=$(mktemp -d /tmp/gonogo-bench.XXXXXX)
chmod 755 "$BENCH_TMP" # the nginx worker (www-data) reads its files
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# -- set-up ----------------------------------------------------------------------------

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null || die "missing $*, and no apt-get to install it"
    if ((!APT_UPDATED)); then apt-get update -q >&2 && APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2
}

setup() {
    [[ $(nproc) -ge 2 ]] || die "needs 2 CPUs (generator on $GEN_CPU, server on $SERVER_CPU); nproc=$(nproc)"
    command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || apt_install nginx
    command -v wrk >/dev/null || apt_install wrk
    [[ -x /usr/bin/time ]] || apt_install time
    command -v curl >/dev/null || apt_install curl
    export PATH="$PATH:/usr/sbin"
    if ! "$GONOGO_PY" -c 'import gonogo.loadgen._engine' 2>/dev/null; then
        log "gonogo's virtualenv or its C engine is missing: make .venv/.installed"
        make -C "$ROOT" .venv/.installed >&2
        "$GONOGO_PY" -c 'import gonogo.loadgen._engine' || die "gonogo's load engine does not import"
    fi
    if ! "$GONOGO_PY" -c 'import gonogo.faults._relay' 2>/dev/null; then
        log "the fault proxy's C relay is not built: building it in place"
        (cd "$ROOT" && "$GONOGO_PY" setup.py -q build_ext --inplace >&2) || die "building the C extensions failed"
    fi
    if ! "$LOCUST" --version >/dev/null 2>&1; then
        log "installing Locust $LOCUST_VERSION into bench/.venv-locust"
        python3 -m venv --help >/dev/null 2>&1 || apt_install python3-venv
        rm -rf "$BENCH_DIR/.venv-locust"
        python3 -m venv "$BENCH_DIR/.venv-locust"
        "$BENCH_DIR/.venv-locust/bin/pip" install -q "locust==$LOCUST_VERSION" >&2
    fi
}

machine_facts() {
    local locust_version
    locust_version=$("$LOCUST" --version 2>&1 | head -1)
    MACHINE_NPROC=$(nproc) \
        MACHINE_CPU=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') \
        MACHINE_KERNEL=$(uname -r) \
        MACHINE_OS=$(. /etc/os-release && echo "$PRETTY_NAME") \
        MACHINE_NGINX=$(nginx -v 2>&1) \
        MACHINE_WRK=$(wrk -v 2>&1 | head -1 | sed 's/ Copyright.*//') \
        MACHINE_LOCUST=$locust_version \
        MACHINE_PYTHON_GONOGO=$("$GONOGO_PY" --version 2>&1) \
        MACHINE_PYTHON_LOCUST=$("$BENCH_DIR/.venv-locust/bin/python" --version 2>&1) \
        MACHINE_GONOGO_COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown) \
        MACHINE_LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg) \
        "$GONOGO_PY" - "$OUT/machine.json" <<'EOF'
import json, os, sys
keys = ["NPROC", "CPU", "KERNEL", "OS", "NGINX", "WRK", "LOCUST", "PYTHON_GONOGO", "PYTHON_LOCUST",
        "GONOGO_COMMIT", "LOADAVG"]
facts = {key.lower(): os.environ["MACHINE_" + key] for key in keys}
facts["loadavg"] += " (at the start of the run)"
open(sys.argv[1], "w").write(json.dumps(facts, indent=2) + "\n")
EOF
}

# timed STEM CMD...: run CMD on the generator core, bounded; its user+sys CPU time in STEM.time,
# and how busy each of the two cores was meanwhile in STEM.cores (whoever used them: other
# processes of the machine show as the difference)
timed() {
    local stem=$1 gen server
    shift
    cut -d' ' -f1-3 /proc/loadavg >"$stem.loadavg"
    gen=$(core_busy "$GEN_CPU")
    server=$(core_busy "$SERVER_CPU")
    run_bounded "$LIMIT" /usr/bin/time -f "%U %S %e" -o "$stem.time" taskset -c "$GEN_CPU" "$@"
    echo "$gen $(core_busy "$GEN_CPU") $server $(core_busy "$SERVER_CPU") $(getconf CLK_TCK)" >"$stem.cores"
}

# the three generators against the static file
gen_gonogo() { # STEM PORT closed|open [gonogo_load.py options...]
    local stem=$1 port=$2 model=$3 extra=(--users "$USERS")
    shift 3
    [[ "$model" == open ]] && extra=(--rate "$OPEN_RATE")
    extra+=("$@")
    timed "$stem" "$GONOGO_PY" "$BENCH_DIR/gonogo_load.py" --port "$port" --model "$model" \
        "${extra[@]}" --duration "$DURATION" --out "$stem.json" >"$stem.log" 2>&1
}
gen_wrk() { # STEM PORT
    timed "$1" wrk -t1 -c"$USERS" -d"${DURATION}s" --latency -s "$BENCH_DIR/wrk_report.lua" \
        "http://127.0.0.1:$2/index.html" >"$1.out" 2>"$1.err"
}
gen_locust() { # STEM PORT [PER_USER_RATE]
    timed "$1" env BENCH_URL="http://127.0.0.1:$2" BENCH_USER_RATE="${3:-0}" \
        "$LOCUST" -f "$BENCH_DIR/locustfile_static.py" --headless -u "$USERS" -r "$USERS" \
        -t "${DURATION}s" --only-summary --json-file "$1" --csv "$1" >"$1.log" 2>&1
}

# the tools in a different order each repetition, so none always runs first
order() { # REP TOOL...
    local rep=$1
    shift
    local tools=("$@") n=$# i
    for ((i = 0; i < n; i++)); do echo "${tools[$(((i + rep - 1) % n))]}"; done
}

# -- 1. throughput ---------------------------------------------------------------------

bench_throughput() {
    local dir="$OUT/throughput" port rep tool worker before
    mkdir -p "$dir"
    port=$(free_port)
    start_nginx "$port"
    log "throughput: warming nginx up (2 s of wrk, not recorded)"
    run_bounded 30 taskset -c "$GEN_CPU" wrk -t1 -c"$USERS" -d2s "http://127.0.0.1:$port/index.html" >/dev/null
    worker=$(nginx_worker_pid)
    for ((rep = 1; rep <= REPS; rep++)); do
        # EXPECT=1: gonogo also on a 100-byte JSON file, unchecked (gonogo-item), and with every
        # response checked: status and a text at the body's end (gonogo-body), status and two
        # JSON fields (gonogo-json)
        # shellcheck disable=SC2086 # a list of words
        for tool in $(order "$rep" gonogo wrk locust $EXPECT_RUNS); do
            log "throughput: run $rep/$REPS, $tool, ${DURATION}s"
            before=$(cpu_ticks "$worker")
            case $tool in
                gonogo) gen_gonogo "$dir/r$rep-gonogo" "$port" closed ;;
                gonogo-item) gen_gonogo "$dir/r$rep-$tool" "$port" closed --path /item.json ;;
                gonogo-body) gen_gonogo "$dir/r$rep-$tool" "$port" closed --path /item.json \
                    --expect-status 200 --body-contains '"end":true}' ;;
                gonogo-json) gen_gonogo "$dir/r$rep-$tool" "$port" closed --path /item.json \
                    --expect-status 200 --json '$.status="ok"' --json '$.items[1].id=3' ;;
                wrk) gen_wrk "$dir/r$rep-wrk" "$port" ;;
                locust) gen_locust "$dir/r$rep-locust" "$port" 0 ;;
            esac
            # the server's CPU time during the run: ticks before, after, ticks per second
            echo "$before $(cpu_ticks "$worker") $(getconf CLK_TCK)" >"$dir/r$rep-$tool.server"
        done
    done
    stop_nginx
}

# -- 2. coordinated omission -----------------------------------------------------------

bench_omission() {
    local dir="$OUT/omission" port rep tool worker stem pauser
    mkdir -p "$dir"
    port=$(free_port)
    start_nginx "$port"
    for ((rep = 1; rep <= REPS; rep++)); do
        for tool in $(order "$rep" gonogo wrk locust); do
            stem="$dir/r$rep-$tool"
            worker=$(nginx_worker_pid)
            log "omission: run $rep/$REPS, $tool; nginx worker $worker stopped ${PAUSE_FOR}s at +${PAUSE_AFTER}s"
            start_bg pauser "$stem-pause.log" taskset -c "$SERVER_CPU" "$GONOGO_PY" "$BENCH_DIR/pause.py" \
                --pid "$worker" --after "$PAUSE_AFTER" --for "$PAUSE_FOR" --out "$stem-pause.json"
            pauser=$STARTED_PID
            case $tool in
                gonogo) gen_gonogo "$stem" "$port" open ;;
                wrk) gen_wrk "$stem" "$port" ;;
                locust) gen_locust "$stem" "$port" "$((OPEN_RATE / USERS))" ;;
            esac
            wait "$pauser" || die "the pauser failed (see $stem-pause.log)"
            untrack "$pauser"
            [[ -s "$stem-pause.json" ]] || die "no pause record in $stem-pause.json"
        done
    done
    stop_nginx
}

# -- 3. journeys against examples/docservice -------------------------------------------

DOC_PIDS=()
start_docservice() { # DATA_DIR: enricher, api, worker as examples/docservice/gonogo.yaml starts them
    local data=$1 src="$ROOT/examples/docservice/src" enricher_port
    mkdir -p "$data"
    enricher_port=$(free_port)
    API_PORT=$(free_port)
    DOC_PIDS=()
    start_bg enricher "$data/enricher.log" env PYTHONPATH="$src" \
        taskset -c "$SERVER_CPU" "$GONOGO_PY" -m docservice.enricher --port "$enricher_port"
    DOC_PIDS+=("$STARTED_PID")
    wait_http "http://127.0.0.1:$enricher_port/health" 20
    start_bg api "$data/api.log" env PYTHONPATH="$src" DOCSERVICE_MAX_UPLOAD_BYTES=104857600 \
        taskset -c "$SERVER_CPU" "$GONOGO_PY" -m docservice.api --port "$API_PORT" \
        --db "$data/data/docservice.db" --storage "$data/data/files"
    DOC_PIDS+=("$STARTED_PID")
    wait_http "http://127.0.0.1:$API_PORT/health" 30
    start_bg worker "$data/worker.log" env PYTHONPATH="$src" \
        taskset -c "$SERVER_CPU" "$GONOGO_PY" -m docservice.worker --db "$data/data/docservice.db" \
        --storage "$data/data/files" --enricher-url "http://127.0.0.1:$enricher_port" --poll-interval 0.1
    DOC_PIDS+=("$STARTED_PID")
}

stop_docservice() {
    local i
    for ((i = ${#DOC_PIDS[@]} - 1; i >= 0; i--)); do stop_group "${DOC_PIDS[$i]}" 10; done
    DOC_PIDS=()
    log "docservice stopped"
}

bench_journeys() {
    local dir="$OUT/journeys" rep tool stem data
    mkdir -p "$dir"
    for ((rep = 1; rep <= REPS; rep++)); do
        for tool in $(order "$rep" gonogo locust); do
            stem="$dir/r$rep-$tool"
            data="$BENCH_TMP/docservice-r$rep-$tool"
            start_docservice "$data"
            log "journeys: run $rep/$REPS, $tool"
            case $tool in
                gonogo)
                    timed "$stem" "$GONOGO_PY" "$BENCH_DIR/journeys_bench.py" \
                        --base-url "http://127.0.0.1:$API_PORT" --iterations "$JOURNEY_ITERATIONS" \
                        --concurrency "$JOURNEY_CONCURRENCY" --out "$stem.json" >"$stem.log" 2>&1
                    ;;
                locust)
                    timed "$stem" env BENCH_URL="http://127.0.0.1:$API_PORT" \
                        "$LOCUST" -f "$BENCH_DIR/locustfile_journey.py" --headless \
                        -u "$JOURNEY_CONCURRENCY" -r "$JOURNEY_CONCURRENCY" -t "15s" --only-summary \
                        --json-file "$stem" --csv "$stem" >"$stem.log" 2>&1
                    ;;
            esac
            stop_docservice
            for f in "$data"/*.log; do cp "$f" "$stem-server-$(basename "$f")"; done
        done
    done
}

# -- 4. the fault proxy with no toxic ---------------------------------------------------

# start_fault_proxy STEM UPSTREAM_PORT SRC_DIR [--toxic-never]: gonogo's fault proxy (from SRC_DIR
# if not empty) on PROXY_CPU, one proxy in front of nginx; sets PROXY_PID (process group), PROXY_PORT.
start_fault_proxy() {
    local stem=$1 upstream=$2 src=$3 i
    shift 3
    rm -f "$stem-proxy.ready"
    start_bg fault-proxy "$stem-proxy.log" env ${src:+PYTHONPATH="$src"} \
        taskset -c "$PROXY_CPU" "$GONOGO_PY" "$BENCH_DIR/fault_proxy_server.py" \
        --upstream "127.0.0.1:$upstream" --ready "$stem-proxy.ready" --stats "$stem-proxy.stats.json" "$@"
    PROXY_PID=$STARTED_PID
    for ((i = 0; i < 200; i++)); do
        [[ -s "$stem-proxy.ready" ]] && break
        kill -0 "$PROXY_PID" 2>/dev/null || die "the fault proxy exited (see $stem-proxy.log)"
        sleep 0.1
    done
    [[ -s "$stem-proxy.ready" ]] || die "the fault proxy was not ready within 20 s"
    PROXY_PORT=$("$GONOGO_PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["listen_port"])' "$stem-proxy.ready")
    wait_http "http://127.0.0.1:$PROXY_PORT/index.html" 10
}

bench_proxy() {
    local dir="$OUT/proxy" port rep path stem target before worker nginx_before
    mkdir -p "$dir"
    port=$(free_port)
    # by default the proxy shares nginx's core, the one the generator does not use: whatever the
    # proxy costs is taken from the server's core, and direct runs are benchmark 1's set-up
    NGINX_LEAN=${NGINX_LEAN:-0} SERVER_CPU=$PROXY_NGINX_CPU start_nginx "$port"
    log "proxy: warming nginx up (2 s of wrk, not recorded)"
    run_bounded 30 taskset -c "$GEN_CPU" wrk -t1 -c"$USERS" -d2s "http://127.0.0.1:$port/index.html" >/dev/null
    for ((rep = 1; rep <= REPS; rep++)); do
        # shellcheck disable=SC2086 # a list of words
        for path in $(order "$rep" $PROXY_PATHS); do
            stem="$dir/r$rep-$path"
            target=$port
            case $path in
                relay) start_fault_proxy "$stem" "$port" "" ;;
                asyncio) start_fault_proxy "$stem" "$port" "" --toxic-never ;;
                before) start_fault_proxy "$stem" "$port" "${PROXY_BEFORE_SRC:?PROXY_BEFORE_SRC is not set}" ;;
                direct) ;;
                *) die "unknown proxy path $path (PROXY_PATHS: direct relay asyncio before)" ;;
            esac
            [[ $path == direct ]] || target=$PROXY_PORT
            log "proxy: run $rep/$REPS, $path, closed ${USERS} users ${DURATION}s, then open ${PROXY_RATE}/s ${DURATION}s"
            [[ $path == direct ]] || before=$(cpu_ticks "$PROXY_PID")
            worker=$(nginx_worker_pid)
            nginx_before=$(cpu_ticks "$worker")
            gen_gonogo "$stem-closed" "$target" closed
            echo "$nginx_before $(cpu_ticks "$worker") $(getconf CLK_TCK)" >"$stem-closed.server"
            [[ $path == direct ]] || echo "$before $(cpu_ticks "$PROXY_PID") $(getconf CLK_TCK)" >"$stem-closed.proxycpu"
            [[ $path == direct ]] || before=$(cpu_ticks "$PROXY_PID")
            timed "$stem-open" "$GONOGO_PY" "$BENCH_DIR/gonogo_load.py" --port "$target" --model open \
                --rate "$PROXY_RATE" --duration "$DURATION" --out "$stem-open.json" >"$stem-open.log" 2>&1
            [[ $path == direct ]] || echo "$before $(cpu_ticks "$PROXY_PID") $(getconf CLK_TCK)" >"$stem-open.proxycpu"
            if [[ $path != direct ]]; then
                stop_group "$PROXY_PID" 10
                [[ -s "$stem-proxy.stats.json" ]] || die "the fault proxy wrote no counters ($stem-proxy.log)"
            fi
        done
    done
    stop_nginx
    "$GONOGO_PY" "$BENCH_DIR/proxy_summary.py" "$dir"
}

# -- 5. the 3-step journey against nginx --------------------------------------------------

# The journey of every generator, for gonogo as a plan's `journeys` (YAML, indented for a load check)
journey3_yaml() {
    cat <<'EOF'
    journeys:
      journey3:
        steps:
          - name: login
            request: {method: POST, path: /login, json: {user: demo, password: secret}}
            expect: {status: 200}
            extract: {token: "json:$.token", id: "json:$.id"}
          - name: item
            request: {path: "/items/{id}", headers: {Authorization: "Bearer {token}"}}
            expect: {status: 200}
          - name: static
            request: {path: /static}
            expect: {status: 200}
EOF
}

# gen_gonogo_journey STEM PORT closed|open: `gonogo run` of a plan with one `load` check of the
# journey, as a user would run it (its own directory and evidence store, fresh every run), on the
# generator's core. Keeps the plan (STEM.plan.yaml), the run's report.json (STEM.report.json) and
# the load's histograms and iteration counts (STEM.histograms.json, STEM.iterations.json).
gen_gonogo_journey() {
    local stem=$1 port=$2 model=$3 dir load run_dir
    dir="$BENCH_TMP/gonogo-$(basename "$stem")"
    mkdir -p "$dir"
    if [[ "$model" == closed ]]; then
        load="    model: closed
    users: $USERS"
    else
        load="    model: open
    rate: $JOURNEY_RATE/s"
    fi
    cat >"$dir/gonogo.yaml" <<EOF
name: bench-journey3
system:
  base_url: http://127.0.0.1:$port
checks:
  load:
    kind: load
$load
    duration: ${DURATION}s
$(journey3_yaml)
gates:
  load.errors: "== 0"
  load.generator.valid: "== 1"
EOF
    cp "$dir/gonogo.yaml" "$stem.plan.yaml"
    # exit status 1 is a NO-GO verdict (an invalid run, or errors), measured all the same;
    # /usr/bin/time writes any non-zero status into STEM.time
    timed "$stem" "$ROOT/.venv/bin/gonogo" run "$dir/gonogo.yaml" >"$stem.log" 2>&1 || true
    run_dir=$(find "$dir/.gonogo/runs" -mindepth 1 -maxdepth 1 -type d | head -1)
    [[ -n "$run_dir" && -s "$run_dir/report.json" ]] || die "gonogo wrote no report (see $stem.log)"
    cp "$run_dir/report.json" "$stem.report.json"
    (cd "$dir" && "$ROOT/.venv/bin/gonogo" artifacts "$(basename "$run_dir")" load-histograms.json \
        --check load -o "$stem.histograms.json" >/dev/null) || log "no load-histograms.json in $stem's run"
    (cd "$dir" && "$ROOT/.venv/bin/gonogo" artifacts "$(basename "$run_dir")" load-journey-failures.json \
        --check load -o "$stem.iterations.json" >/dev/null) || log "no load-journey-failures.json in $stem's run"
    log "gonogo: $(describe_gonogo_report "$stem.report.json")"
}

# describe_gonogo_report REPORT_JSON: one line: the check's status, requests/s, generator.valid and
# the driver that ran the journeys (generator.fast_path and its source, else the load metrics' source)
describe_gonogo_report() {
    "$GONOGO_PY" -c '
import json, sys
report = json.load(open(sys.argv[1]))
metrics = {m["full_name"]: m for m in report["metrics"]}
status = report["checks"][0]["status"]
rps = metrics["load.rps"]["value"] if "load.rps" in metrics else 0.0
valid = metrics["load.generator.valid"]["value"] if "load.generator.valid" in metrics else None
driver = metrics["load.requests"]["source"] if "load.requests" in metrics else "not said"
fast = metrics.get("load.generator.fast_path")
if fast is not None:  # which driver ran the journeys: the C engine, or Python and why
    driver = ("C engine: " if fast["value"] == 1 else "Python driver: ") + fast["source"]
print(f"check {status}, {rps:.0f} requests/s, generator.valid {valid}; driver: {driver}")
' "$1"
}

gen_wrk_journey() { # STEM PORT
    timed "$1" wrk -t1 -c"$USERS" -d"${DURATION}s" --latency -s "$BENCH_DIR/wrk_journey.lua" \
        "http://127.0.0.1:$2" >"$1.out" 2>"$1.err"
}

gen_locust_journey() { # STEM PORT [JOURNEYS_PER_SECOND_PER_USER]
    timed "$1" env BENCH_URL="http://127.0.0.1:$2" BENCH_USER_RATE="${3:-0}" \
        "$LOCUST" -f "$BENCH_DIR/locustfile_journey3.py" --headless -u "$USERS" -r "$USERS" \
        -t "${DURATION}s" --only-summary --json-file "$1" --csv "$1" >"$1.log" 2>&1
}

bench_journey3() {
    local dir="$OUT/journey3" port rep tool worker before
    mkdir -p "$dir"
    port=$(free_port)
    start_nginx "$port" "$BENCH_DIR/nginx_journey.conf"
    log "journey3: warming nginx up (2 s of wrk, not recorded)"
    run_bounded 30 taskset -c "$GEN_CPU" wrk -t1 -c"$USERS" -d2s -s "$BENCH_DIR/wrk_journey.lua" \
        "http://127.0.0.1:$port" >/dev/null 2>&1
    worker=$(nginx_worker_pid)
    for ((rep = 1; rep <= REPS; rep++)); do
        for tool in $(order "$rep" gonogo wrk locust); do
            log "journey3: run $rep/$REPS, $tool, closed ${USERS} users ${DURATION}s"
            before=$(cpu_ticks "$worker")
            case $tool in
                gonogo) gen_gonogo_journey "$dir/r$rep-gonogo" "$port" closed ;;
                wrk) gen_wrk_journey "$dir/r$rep-wrk" "$port" ;;
                locust) gen_locust_journey "$dir/r$rep-locust" "$port" 0 ;;
            esac
            echo "$before $(cpu_ticks "$worker") $(getconf CLK_TCK)" >"$dir/r$rep-$tool.server"
        done
    done
    stop_nginx
}

# -- 6. coordinated omission for journeys -------------------------------------------------

# The wall clock and the monotonic clock at one instant, to place pause.py's monotonic stamps
# in the wall-clock window gonogo's report gives its measured phase
clock_pair() { "$GONOGO_PY" -c 'import json, time; print(json.dumps({"wall": time.time(), "monotonic": time.monotonic()}))'; }

bench_journey_omission() {
    local dir="$OUT/journey-omission" port rep tool worker stem pauser
    mkdir -p "$dir"
    port=$(free_port)
    start_nginx "$port" "$BENCH_DIR/nginx_journey.conf"
    for ((rep = 1; rep <= REPS; rep++)); do
        for tool in $(order "$rep" gonogo locust); do
            stem="$dir/r$rep-$tool"
            worker=$(nginx_worker_pid)
            log "journey-omission: run $rep/$REPS, $tool; nginx worker $worker stopped ${PAUSE_FOR}s at +${JOURNEY_PAUSE_AFTER}s"
            clock_pair >"$stem.clock.json"
            start_bg pauser "$stem-pause.log" taskset -c "$SERVER_CPU" "$GONOGO_PY" "$BENCH_DIR/pause.py" \
                --pid "$worker" --after "$JOURNEY_PAUSE_AFTER" --for "$PAUSE_FOR" --out "$stem-pause.json"
            pauser=$STARTED_PID
            case $tool in
                gonogo) gen_gonogo_journey "$stem" "$port" open ;;
                # closed-loop users, each asking JOURNEY_RATE / USERS journeys per second
                locust) gen_locust_journey "$stem" "$port" "$("$GONOGO_PY" -c "print($JOURNEY_RATE / $USERS)")" ;;
            esac
            wait "$pauser" || die "the pauser failed (see $stem-pause.log)"
            untrack "$pauser"
            [[ -s "$stem-pause.json" ]] || die "no pause record in $stem-pause.json"
        done
    done
    stop_nginx
}

# -- main ------------------------------------------------------------------------------

setup
RUN_ID=$(date +%Y%m%d-%H%M%S)
OUT="$BENCH_DIR/results/$RUN_ID"
mkdir -p "$OUT"
ln -sfn "$RUN_ID" "$BENCH_DIR/results/latest"
machine_facts
log "results in $OUT; mode $MODE, $REPS repetitions of ${DURATION}s"
case "$MODE" in
    all)
        bench_throughput
        bench_omission
        bench_journeys
        bench_journey3
        bench_journey_omission
        ;;
    throughput) bench_throughput ;;
    omission) bench_omission ;;
    journeys) bench_journeys ;;
    journey3) bench_journey3 ;;
    journey-omission) bench_journey_omission ;;
    proxy) bench_proxy ;;
esac
"$GONOGO_PY" "$BENCH_DIR/summarize.py" "$OUT"
