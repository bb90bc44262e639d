#!/usr/bin/env bash
# Validate .github/workflows/*.yml against the GitHub Actions workflow schema that
# check-jsonschema vendors (no network needed once it is installed), and check that the
# [tool.cibuildwheel] configuration parses and selects the wheels we mean to ship.
# Usage: bash scripts/check_workflows.sh   (installs its tools into a venv in a temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TOOLS=$(mktemp -d "${TMPDIR:-/tmp}/fastws-workflows.XXXXXX")
trap 'rm -rf "$TOOLS"' EXIT
"$PYTHON" -m venv "$TOOLS/venv"
"$TOOLS/venv/bin/python" -m pip install -q check-jsonschema "cibuildwheel>=3.4,<4"

echo "== workflow files against the github-workflows schema =="
"$TOOLS/venv/bin/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml

echo "== [tool.cibuildwheel]: what each runner of wheels.yml builds =="
count=0
for spec in linux:x86_64 linux:aarch64 macos:x86_64 macos:arm64 windows:AMD64 windows:ARM64; do
    ids=$("$TOOLS/venv/bin/cibuildwheel" --print-build-identifiers --platform "${spec%%:*}" --archs "${spec#*:}")
    n=$(echo "$ids" | wc -w)
    count=$((count + n))
    echo "$spec ($n): $(echo $ids)"
    # Every runner builds CPython 3.9 to 3.14 and the free-threaded 3.13t and 3.14t.
    for v in cp39 cp310 cp311 cp312 cp313 cp314 cp313t cp314t; do
        if ! grep -q "^$v-" <<<"$ids"; then
            echo "check_workflows: $spec does not build $v" >&2
            exit 1
        fi
    done
done
echo "check_workflows: $count wheels selected; workflows valid"
