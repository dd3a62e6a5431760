#!/usr/bin/env bash
# The C extensions under AddressSanitizer and UndefinedBehaviorSanitizer (`make sanitize`).
#
#   scripts/sanitize.sh [PYTEST ARGS]   # default: tests/checks/load
#
# Works on a copy in a temporary folder (this checkout's HEAD plus its uncommitted changes to
# tracked files) with its own virtualenv, so .venv/ and the working tree are left alone. The
# extensions are built with -fsanitize=address,undefined and the tests run with the ASan
# runtime preloaded into Python. Compiler: SANITIZE_CC (gcc or clang); by default clang when
# installed, whose UBSan also catches what gcc's does not (arithmetic on a NULL pointer). Exit status 1 on any sanitizer report (written to sanitizer.*
# files, printed at the end); failing tests without a report only warn: everything is
# several times slower under ASan and a few timing tests may miss. KEEP=1 keeps the folder.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gonogo-sanitize.XXXXXX")
# A sanitizer report aborts pytest before its fixtures stop the test servers: whatever still
# runs from the copy is stopped on the way out.
stop_leftovers() { pkill -KILL -f "$tmp/" 2>/dev/null || true; }
if [ "${KEEP:-0}" = 1 ]; then
    echo "sanitize: working in $tmp (kept)"
    trap stop_leftovers EXIT
else
    trap 'stop_leftovers; rm -rf "$tmp"' EXIT
fi
[ $# -gt 0 ] || set -- tests/checks/load
start=$(date +%s)

git clone -q "$here" "$tmp/src"
git -C "$here" diff --binary HEAD | git -C "$tmp/src" apply --allow-empty
cd "$tmp/src"
"$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'

cc=${SANITIZE_CC:-$(command -v clang >/dev/null 2>&1 && echo clang || echo gcc)}
export CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -g -O1"
if [ "$cc" = clang ]; then
    runtime=$(clang -print-file-name=libclang_rt.asan-x86_64.so)
    CC=clang LDSHARED="clang -shared" LDFLAGS="-fsanitize=address,undefined -shared-libasan" \
        .venv/bin/python setup.py -q build_ext --inplace --force
else
    runtime=$(gcc -print-file-name=libasan.so)
    CC=gcc LDFLAGS="-fsanitize=address,undefined" .venv/bin/python setup.py -q build_ext --inplace --force
fi
[ -f "$runtime" ] || { echo "sanitize: no ASan runtime for $cc ($runtime)" >&2; exit 1; }
for so in src/gonogo/loadgen/_engine.*.so src/gonogo/faults/_relay.*.so; do
    ldd "$so" | grep -q asan || { echo "sanitize: $so is not built with ASan" >&2; exit 1; }
done
unset CFLAGS
echo "sanitize: extensions built with $cc; running pytest $*"

reports="$tmp/sanitizer"
status=0
LD_PRELOAD="$runtime" \
    ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:log_path=$reports" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$reports" \
    PYTHONMALLOC=malloc \
    .venv/bin/pytest -q -ra -p no:cacheprovider "$@" || status=$?

elapsed=$(( $(date +%s) - start ))
if compgen -G "$reports.*" >/dev/null; then
    cat "$reports".* >&2
    echo "sanitize: sanitizer reports above (${elapsed}s)" >&2
    exit 1
fi
if [ "$status" -ne 0 ]; then
    echo "sanitize: no sanitizer report, but pytest exited with $status (timing under ASan?) (${elapsed}s)" >&2
else
    echo "sanitize: no sanitizer report, all tests passed (${elapsed}s)"
fi
