#!/usr/bin/env bash
# Create or refresh the project's virtualenv (.venv) with `pip install -e '.[dev]'`.
#
# Idempotent: the install is skipped while pyproject.toml and the interpreter are unchanged
# since the last successful install (a hash kept in .venv/.installed-hash).
# Set PYTHON=/path/to/python3.12 to choose the interpreter that creates the venv.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
STAMP="$VENV/.installed-hash"

say() { printf 'bootstrap: %s\n' "$*"; }

# True when "$@" runs a Python >= 3.12; prints its real executable path.
python_ok() {
    "$@" -c 'import sys; assert sys.version_info >= (3, 12); print(sys.executable)' \
        2>/dev/null
}

find_python() {
    local found candidate
    if [ -n "${PYTHON:-}" ]; then
        if found="$(python_ok "$PYTHON")"; then echo "$found"; return 0; fi
        say "PYTHON=$PYTHON is not a working Python >= 3.12" >&2
        return 1
    fi
    # On PATH (works where python3.12 is a real binary, or a pyenv shim already selected).
    for candidate in python3.12 python3.13 python3.14 python3; do
        if command -v "$candidate" >/dev/null 2>&1 && found="$(python_ok "$candidate")"; then
            echo "$found"; return 0
        fi
    done
    # A pyenv shim that needs the version selected.
    local pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}" version
    for candidate in "$pyenv_root"/versions/3.1[2-9]*; do
        [ -d "$candidate" ] || continue
        version="$(basename "$candidate")"
        if found="$(PYENV_VERSION="$version" python_ok python3)"; then echo "$found"; return 0; fi
        if found="$(python_ok "$candidate/bin/python3")"; then echo "$found"; return 0; fi
    done
    for candidate in /usr/bin/python3.12 /usr/local/bin/python3.12 \
        /usr/bin/python3.13 /usr/local/bin/python3.13; do
        if [ -x "$candidate" ] && found="$(python_ok "$candidate")"; then
            echo "$found"; return 0
        fi
    done
    return 1
}

install_hash() {
    # pyproject.toml decides what gets installed; the interpreter version too.
    {
        cat pyproject.toml
        "$VENV/bin/python" -c 'import sys; print(sys.version)'
    } | sha256sum | cut -d' ' -f1
}

bootstrap() {
    if [ -x "$VENV/bin/python" ] && python_ok "$VENV/bin/python" >/dev/null; then
        if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(install_hash)" ]; then
            say ".venv is up to date ($("$VENV/bin/python" --version))"
            return 0
        fi
    else
        local python
        if ! python="$(find_python)"; then
            cat >&2 <<'EOF'
bootstrap: no Python >= 3.12 found (Django 6.1 needs it).
  Looked for: $PYTHON, python3.12/python3.13/python3 on PATH, ~/.pyenv/versions/3.12*+,
  /usr/bin/python3.12, /usr/local/bin/python3.12.
  Install Python 3.12 (e.g. `pyenv install 3.12`, or your OS package python3.12 with its
  venv module), or run with PYTHON=/path/to/python3.12.
EOF
            return 1
        fi
        if [ -e "$VENV" ]; then
            say "removing $VENV (its interpreter is missing or older than 3.12)"
            rm -rf "$VENV"
        fi
        say "creating .venv with $python ($("$python" --version 2>&1))"
        "$python" -m venv "$VENV"
    fi
    say "installing -e '.[dev]' into .venv (pyproject.toml changed or first run)"
    rm -f "$STAMP"
    local log="$ROOT/var/pip-install.log"
    if ! "$VENV/bin/python" -m pip install --disable-pip-version-check -e '.[dev]' \
        >"$log" 2>&1; then
        # Hide the noise of configured-but-absent local indexes; show the rest.
        grep -v "^WARNING: Location 'file://.*' is ignored" "$log" | tail -n 40 >&2 || true
        say "pip install failed; full log: $log" >&2
        return 1
    fi
    install_hash >"$STAMP"
    say "done ($("$VENV/bin/python" --version))"
}

# Two scripts bootstrapping at once (make run in one shell, make test in another) must not
# install into the same venv concurrently.
mkdir -p "$ROOT/var"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$ROOT/var/.bootstrap.lock"
    flock 9
fi
bootstrap
