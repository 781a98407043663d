#!/usr/bin/env bash
# Build badpix._core with AddressSanitizer + UBSan (BADPIX_SANITIZE=1) into build/asan*, without
# touching the in-place badpix/_core*.so others use, then run the core's tests against that build
# from a temporary copy of the package. Exits non-zero on a build failure, a test failure or any
# sanitizer report.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python}

echo "== sanitize: building the core with BADPIX_SANITIZE=1 into build/asan-lib"
BADPIX_SANITIZE=1 "$PY" setup.py -q build_ext --force --build-temp build/asan --build-lib build/asan-lib
SO=$(ls build/asan-lib/badpix/_core*.so)

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
echo "== sanitize: staging package + tests in $TMP"
mkdir -p "$TMP/badpix" "$TMP/tests"
cp -r badpix/. "$TMP/badpix/"
rm -f "$TMP"/badpix/_core*.so
cp "$SO" "$TMP/badpix/"
cp tests/test_core.py tests/test_robust*.py "$TMP/tests/"

LIBASAN=$(gcc -print-file-name=libasan.so)
LIBUBSAN=$(gcc -print-file-name=libubsan.so)
echo "== sanitize: LD_PRELOAD=$LIBASAN $LIBUBSAN"
LOG="$TMP/sanitizer.log"
cd "$TMP"
set +e
# detect_leaks=0: CPython keeps interned objects alive at exit by design.
LD_PRELOAD="$LIBASAN $LIBUBSAN" \
ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:halt_on_error=1:exitcode=99:log_path=$LOG" \
UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=98:log_path=$LOG" \
PYTHONPATH="$TMP" \
    "$PY" -c "import badpix._core as c, sys; assert c.__file__.startswith('$TMP'), c.__file__; \
import pytest; sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', 'tests']))"
STATUS=$?
set -e
if compgen -G "$LOG*" > /dev/null; then
    echo "== sanitize: sanitizer reports:"
    cat "$LOG"*
    STATUS=${STATUS/#0/1}
fi
if [ "$STATUS" -ne 0 ]; then
    echo "== sanitize: FAILED (status $STATUS)"
    exit "$STATUS"
fi
echo "== sanitize: clean"
