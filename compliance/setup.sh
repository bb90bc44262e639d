#!/usr/bin/env bash
# Installs the Autobahn|Testsuite (wstest) in a Python 2.7 virtualenv, once.
#
#   bash compliance/setup.sh          # prints the path of wstest's python on its last line
#
# The testsuite runs on Python 2.7 only. The interpreter is $FASTWS_PY27 if set,
# else pyenv's newest 2.7 ($(pyenv root)/versions/2.7.*, or $PYENV_ROOT or
# ~/.pyenv without pyenv on PATH), else python2.7 on PATH.
# The virtualenv goes to $FASTWS_WSTEST_HOME (default ~/.cache/fastws-wstest),
# outside the work tree, so that CI's fresh clones reuse it. virtualenv<20.22
# (the last line that creates Python 2 environments) is installed into that
# directory too, not into the interpreter's site-packages. Idempotent: a
# complete install (stamped with the hash of wstest-constraints.txt) is reused
# as it is; anything else is rebuilt from scratch. Needs PyPI, a C compiler (a
# wheel or two are built from source) and nothing else.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
home=${FASTWS_WSTEST_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/fastws-wstest}
venv="$home/venv"
constraints="$here/wstest-constraints.txt"
stamp="$venv/.fastws-setup-ok"
want=$(sha256sum "$constraints" | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
    && "$venv/bin/python" -c 'import autobahntestsuite.wstest' 2>/dev/null; then
    echo "wstest: already installed in $venv" >&2
    echo "$venv/bin/python"
    exit 0
fi

# The Python 2.7 interpreter.
py27=${FASTWS_PY27:-}
if [ -z "$py27" ]; then
    if command -v pyenv >/dev/null 2>&1; then
        root=$(pyenv root)
    else
        root=${PYENV_ROOT:-$HOME/.pyenv}
    fi
    for candidate in $(ls -d "$root"/versions/2.7.* 2>/dev/null | sort -V -r); do
        if [ -x "$candidate/bin/python" ]; then
            py27="$candidate/bin/python"
            break
        fi
    done
fi
if [ -z "$py27" ] && command -v python2.7 >/dev/null 2>&1; then
    py27=$(command -v python2.7)
fi
if [ -z "$py27" ] || ! "$py27" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))'; then
    echo "setup.sh: no Python 2.7 found: install one with pyenv (pyenv install 2.7.18)" \
         "or point FASTWS_PY27 at it" >&2
    exit 1
fi
echo "wstest: installing with $py27 ($("$py27" -V 2>&1)) into $venv" >&2

# Python 2's pip carries a CA bundle from 2019: use the system's, as today's
# PyPI (or a TLS proxy in front of it) needs, unless the caller chose one.
if [ -z "${PIP_CERT:-}" ]; then
    for bundle in "${SSL_CERT_FILE:-}" "${REQUESTS_CA_BUNDLE:-}" \
        /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
        if [ -n "$bundle" ] && [ -f "$bundle" ]; then
            export PIP_CERT="$bundle"
            break
        fi
    done
fi

rm -rf "$venv" "$home/bootstrap"
mkdir -p "$home"
log="$home/setup.log"
: > "$log"
run() {  # quiet unless it fails: Python 2's pip is chatty
    if ! "$@" >>"$log" 2>&1; then
        echo "setup.sh: failed: $*" >&2
        tail -n 40 "$log" >&2
        exit 1
    fi
}
# virtualenv for Python 2, into a private directory (the interpreter's own
# site-packages are left alone). ensurepip provides a pip if it has none.
if ! "$py27" -m pip --version >/dev/null 2>&1; then
    run "$py27" -m ensurepip --user
fi
run "$py27" -m pip install --disable-pip-version-check --no-warn-script-location \
    --target "$home/bootstrap" 'virtualenv<20.22'
run env PYTHONPATH="$home/bootstrap" "$py27" -m virtualenv --no-download "$venv"
run "$venv/bin/python" -m pip install --disable-pip-version-check -c "$constraints" \
    autobahntestsuite==25.10.1
run "$venv/bin/python" -c 'import autobahntestsuite.wstest'
echo "$want" > "$stamp"
echo "wstest: ready: $("$venv/bin/wstest" --autobahnversion 2>&1 | tr '\n' ' ')" >&2
echo "$venv/bin/python"
