#!/usr/bin/env bash
# Memory-safety check of the compiled codec (issue #6).
#
#   scripts/asan.sh              AddressSanitizer + UndefinedBehaviorSanitizer + LeakSanitizer
#   scripts/asan.sh --valgrind   also valgrind memcheck (slower; needs valgrind)
#   scripts/asan.sh --valgrind-only   valgrind memcheck alone, no sanitizer build
#   scripts/asan.sh --keep       keep the temporary tree (its path is printed)
#   scripts/asan.sh --patch F    apply patch F to the temporary copy first (to check that a
#                                planted bug is caught; the working tree is never patched)
#   scripts/asan.sh -- ARGS      pass ARGS to pytest instead of the default test selection
#
# 1. Copies the source tree to a temporary directory (the .so in the working tree,
#    which other people may be using, is never rebuilt or touched).
# 2. Builds fastws._speedups there with -fsanitize=address,undefined (-O0 -g3 via
#    FASTWS_DEBUG_BUILD=1; UB is fatal: -fno-sanitize-recover=all).
# 3. Runs the codec tests and the fuzz tests against that build, compiled core
#    only (FASTWS_REQUIRE_EXTENSIONS=1), with libasan preloaded (CPython itself
#    is not instrumented) and PYTHONMALLOC=malloc, so that every bytes object the
#    codec allocates is its own malloc block that ASan can guard (pymalloc would
#    hide small overflows inside its arenas).
# 4. Fails (exit 1) on any ASan or UBSan report, on any leak whose allocation
#    stack goes through the fastws extension, or on a test failure. Leaks whose
#    stacks stay inside the interpreter (CPython does not free everything at
#    exit) are counted and listed in the log, not failed on; asan-suppressions.txt
#    silences the libraries fastws never calls.
#
# Environment: PYTHON (default: python3), FASTWS_ASAN_TMP (parent of the temporary tree).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PYTHON=${PYTHON:-python3}
# The real interpreter, not a pyenv shim (a shell script that would run under ASan too).
PYTHON=$("$PYTHON" -c 'import sys; print(sys.executable)')
PATCH=
KEEP=0
VALGRIND=0
PYTEST_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --keep) KEEP=1 ;;
        --valgrind) VALGRIND=1 ;;
        --valgrind-only) VALGRIND=2 ;;
        --patch) PATCH=$(realpath "$2"); shift ;;
        --) shift; PYTEST_ARGS=("$@"); break ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "asan.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
if [ ${#PYTEST_ARGS[@]} -eq 0 ]; then
    PYTEST_ARGS=(tests/test_codec_close.py tests/test_codec_equivalence.py tests/test_codec_frames.py
                 tests/test_codec_header.py tests/test_codec_mask.py tests/test_codec_plain_message.py
                 tests/test_codec_scan_utf8.py tests/test_codec_utf8.py tests/test_fuzz_targets.py
                 tests/test_fuzz_regressions.py tests/test_fastpath.py)
fi

CC=${CC:-gcc}
LIBASAN=$("$CC" -print-file-name=libasan.so)
if [ ! -e "$LIBASAN" ]; then
    echo "asan.sh: $CC has no libasan.so (apt-get install gcc or libasan8)" >&2
    exit 2
fi

START=$(date +%s)
TMP=$(mktemp -d "${FASTWS_ASAN_TMP:-${TMPDIR:-/tmp}}/fastws-asan.XXXXXX")
cleanup() { if [ "$KEEP" = 1 ]; then echo "asan.sh: kept $TMP"; else rm -rf "$TMP"; fi; }
trap cleanup EXIT

echo "== copying the source tree to $TMP/src =="
mkdir -p "$TMP/src"
# Only what the build and the tests need; no compiled objects, no generated C.
tar -C "$ROOT" --exclude='__pycache__' --exclude='*.so' --exclude='fastws/_speedups.c' \
    --exclude='fastws/asyncio/_fastpath_py.c' \
    --exclude='*.html' -cf - setup.py pyproject.toml README.md fastws tests fuzz \
    | tar -C "$TMP/src" -xf -
cd "$TMP/src"
if [ -n "$PATCH" ]; then
    echo "== applying $PATCH to the copy =="
    patch -p1 <"$PATCH"
fi

STATUS=0
if [ "$VALGRIND" != 2 ]; then
echo "== building fastws._speedups and fastws.asyncio._fastpath with -fsanitize=address,undefined =="
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
CC="$CC" CFLAGS="$SAN" LDFLAGS="$SAN" FASTWS_DEBUG_BUILD=1 \
    "$PYTHON" setup.py -q build_ext --inplace >"$TMP/build.log" 2>&1 || { cat "$TMP/build.log"; exit 1; }
SO=$(ls fastws/_speedups*.so)
# (ldd's output in a variable: `ldd | grep -q` under pipefail fails at random when
# grep exits at the first match and ldd gets SIGPIPE.)
LINKED=$(ldd "$SO" 2>&1 || true)
if [ "$(echo "$SO" | wc -w)" != 1 ] || [[ "$LINKED" != *libasan* ]]; then
    echo "asan.sh: '$SO' is not one extension linked with libasan; build log:" >&2
    cat "$TMP/build.log" >&2
    exit 1
fi
echo "built $TMP/src/$SO ($(ldd "$SO" | grep -o 'lib[a-z]*san[^ ]*' | sort -u | tr '\n' ' '))"

mkdir -p "$TMP/logs"
export PYTHONPATH="$TMP/src"
export PYTHONDONTWRITEBYTECODE=1
export FASTWS_REQUIRE_EXTENSIONS=1
unset FASTWS_NO_EXTENSIONS
export PYTHONMALLOC=malloc
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:exitcode=86:abort_on_error=0:detect_stack_use_after_return=1:check_initialization_order=1:strict_string_checks=1:log_path=$TMP/logs/asan"
# exitcode is a flag common to ASan and LSan (LSAN_OPTIONS would override it): a leak
# also exits 86, after pytest wrote its JUnit report; the reports decide below.
export LSAN_OPTIONS="suppressions=$HERE/asan-suppressions.txt:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=87:log_path=$TMP/logs/ubsan"

echo "== checking that the instrumented build is the one imported =="
LD_PRELOAD="$LIBASAN" ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" "$PYTHON" - "$TMP/src" <<'EOF'
import sys, fastws, fastws._speedups as s
assert fastws.IMPLEMENTATION == "cython", fastws.IMPLEMENTATION
assert s.__file__.startswith(sys.argv[1]), s.__file__
print("fastws._speedups:", s.__file__, "SIMD:", s.simd_level())
from fastws.asyncio import fastpath, _fastpath
assert fastpath.IMPLEMENTATION == "cython", fastpath.IMPLEMENTATION
assert _fastpath.__file__.startswith(sys.argv[1]), _fastpath.__file__
print("fastws.asyncio._fastpath:", _fastpath.__file__)
EOF

echo "== pytest under ASan/UBSan/LSan: ${PYTEST_ARGS[*]} =="
set +e
LD_PRELOAD="$LIBASAN" "$PYTHON" -m pytest -q -p no:cacheprovider -x --junitxml="$TMP/junit-1.xml" \
    "${PYTEST_ARGS[@]}"
RC1=$?
# The portable kernels too (the default run uses AVX2 where the CPU has it).
echo "== again with the portable kernels (FASTWS_SIMD=generic): codec tests =="
LD_PRELOAD="$LIBASAN" FASTWS_SIMD=generic "$PYTHON" -m pytest -q -p no:cacheprovider -x \
    --junitxml="$TMP/junit-2.xml" tests/test_codec_frames.py tests/test_codec_utf8.py tests/test_codec_mask.py
RC2=$?
set -e

echo "== sanitizer reports =="
"$PYTHON" - "$TMP" "$RC1" "$RC2" <<'EOF'
import pathlib, re, sys
import xml.etree.ElementTree as ET

tmp = pathlib.Path(sys.argv[1])
logs = sorted((tmp / "logs").glob("*"))
codes = [int(c) for c in sys.argv[2:]]
ours = re.compile(r"_speedups|_simd\.h|fastws")
errors, leaks_ours, leaks_other = [], [], []
for log in logs:
    text = log.read_text(errors="replace")
    # UBSan: "file:line:col: runtime error: ..."; ASan: "ERROR: AddressSanitizer: ..."
    for m in re.finditer(r"^.*runtime error:.*$", text, re.M):
        errors.append(f"{log.name}: {m.group(0)}")
    if "ERROR: AddressSanitizer" in text:
        errors.append(f"{log.name}:\n{text[:6000]}")
    for block in re.split(r"\n(?=(?:Direct|Indirect) leak of )", text):
        if not re.match(r"(?:Direct|Indirect) leak of ", block):
            continue
        block = block.split("\n\n")[0]
        (leaks_ours if ours.search(block) else leaks_other).append((log.name, block))
for name, block in leaks_other:
    print(f"interpreter leak (not fastws), {name}: {block.splitlines()[0]}")
print(f"leaks outside fastws (CPython's own, at exit): {len(leaks_other)}")
for e in errors:
    print("SANITIZER ERROR:", e)
for name, block in leaks_ours:
    print(f"LEAK IN FASTWS, {name}:\n{block}\n")
# pytest's verdict: its JUnit reports (an exit status of 86 only says that LSan
# found some leak at exit, possibly the interpreter's own).
bad_runs = []
for i, rc in enumerate(codes, 1):
    report = tmp / f"junit-{i}.xml"
    if not report.exists():
        bad_runs.append(f"run {i}: no test report (exit status {rc}: killed by a sanitizer?)")
        continue
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    n = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    print(f"run {i}: {n['tests']} tests, {n['failures']} failed, {n['errors']} errors, "
          f"{n['skipped']} skipped, exit status {rc}")
    if n["failures"] or n["errors"] or n["skipped"] or not n["tests"] or rc not in (0, 86):
        bad_runs.append(f"run {i}: {n}, exit status {rc}")
    elif rc == 86 and not (leaks_ours or leaks_other or errors):
        bad_runs.append(f"run {i}: exit status 86 without a sanitizer report")
for b in bad_runs:
    print("FAILED:", b)
print(f"sanitizer errors: {len(errors)}; leaks through fastws: {len(leaks_ours)}; failed runs: {len(bad_runs)}")
sys.exit(1 if errors or leaks_ours or bad_runs else 0)
EOF
STATUS=$?
fi

if [ "$VALGRIND" != 0 ] && [ $STATUS -eq 0 ]; then
    echo "== valgrind memcheck: a plain -O0 -g build, the fuzz corpus replay =="
    command -v valgrind >/dev/null || { echo "asan.sh: valgrind is not installed (apt-get install -y valgrind)" >&2; exit 2; }
    rm -f fastws/_speedups*.so
    FASTWS_DEBUG_BUILD=1 "$PYTHON" setup.py -q build_ext --inplace >"$TMP/build-valgrind.log" 2>&1 \
        || { cat "$TMP/build-valgrind.log"; exit 1; }
    mkdir -p "$TMP/logs"
    set +e
    # Definite leaks only: CPython keeps "possibly lost" and "still reachable" memory at exit.
    PYTHONMALLOC=malloc FASTWS_REQUIRE_EXTENSIONS=1 PYTHONPATH="$TMP/src" valgrind --tool=memcheck \
        --error-exitcode=88 --leak-check=full --show-leak-kinds=definite \
        --errors-for-leak-kinds=definite --num-callers=40 --log-file="$TMP/logs/valgrind.%p" \
        "$PYTHON" -m pytest -q -p no:cacheprovider -x --junitxml="$TMP/junit-valgrind.xml" \
        tests/test_fuzz_targets.py -k "corpus or every"
    VRC=$?
    set -e
    # CPython itself is not valgrind-clean without its suppression file (uninitialised
    # reads in its parser, glibc's AVX2 string functions reading past the end...):
    # only the errors whose stack goes through fastws._speedups count.
    "$PYTHON" - "$TMP" "$VRC" <<'EOF'
import pathlib, re, sys
import xml.etree.ElementTree as ET
tmp = pathlib.Path(sys.argv[1])
ours, other = [], 0
for log in sorted((tmp / "logs").glob("valgrind.*")):
    text = re.sub(r"(?m)^==\d+== ?", "", log.read_text(errors="replace"))
    for block in text.split("\n\n"):
        first = block.strip().splitlines()[0] if block.strip() else ""
        if not re.match(r"(Invalid|Conditional|Use of uninit|Syscall param|Mismatched|"
                        r"Source and destination|Argument|.*definitely lost)", first):
            continue
        if re.search(r"_speedups|_simd\.h", block):
            ours.append(block)
        else:
            other += 1
report = tmp / "junit-valgrind.xml"
suite = ET.parse(report).getroot() if report.exists() else None
if suite is not None and suite.tag != "testsuite":
    suite = suite.find("testsuite")
n = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors")} if suite is not None else None
print(f"valgrind: interpreter errors (not fastws): {other}; errors through fastws: {len(ours)}; "
      f"tests: {n}; exit status {sys.argv[2]}")
for block in ours:
    print("VALGRIND ERROR IN FASTWS:\n" + block + "\n")
bad = ours or n is None or n["failures"] or n["errors"] or not n["tests"] or int(sys.argv[2]) not in (0, 88)
sys.exit(1 if bad else 0)
EOF
    STATUS=$?
fi

echo "asan.sh: done in $(( $(date +%s) - START )) s, status $STATUS"
exit $STATUS
