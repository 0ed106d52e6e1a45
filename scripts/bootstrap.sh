#!/usr/bin/env bash
# Idempotent setup for a fresh Debian machine; `make serve` and `make test` both call it.
#
#   1. System packages (apt): PostgreSQL server binaries, wrk, make, chromium (the console's
#      browser tests), and what the README's walkthrough and the docs use (curl, jq,
#      sqlite3); python3-venv when .venv must be created. Skipped entirely when all are
#      present.
#   2. .venv (python3 -m venv) if missing.
#   3. pip install -e ".[dev]" only when pyproject.toml changed since the last install.
#
# Environment:
#   PYTHON                    interpreter used to create .venv (default: python3)
#   TOKENWARD_SKIP_APT=1      never call apt-get (report what is missing and carry on)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
VENV=".venv"
STAMP="$VENV/.tokenward-bootstrap-stamp"

say() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }

have_postgres() {
    local initdb
    for initdb in /usr/lib/postgresql/*/bin/initdb; do
        [[ -x "$initdb" ]] && return 0
    done
    return 1
}

# --- 1. system packages -----------------------------------------------------------------
missing=()
have_postgres || missing+=(postgresql)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v make >/dev/null 2>&1 || missing+=(make)
for tool in curl jq sqlite3; do  # the README walkthrough and docs/ (tests run them)
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
if [[ ! -x "$VENV/bin/python" ]]; then
    if ! command -v "$PYTHON" >/dev/null 2>&1; then
        missing+=(python3 python3-venv)
    elif ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        missing+=(python3-venv)  # Debian ships ensurepip separately from the interpreter
    fi
fi

if ((${#missing[@]} == 0)); then
    say "system packages present"
elif [[ "${TOKENWARD_SKIP_APT:-}" == 1 ]]; then
    say "TOKENWARD_SKIP_APT=1: not installing ${missing[*]}"
else
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and apt-get is not available"
    if ((EUID == 0)); then
        as_root=()
    elif command -v sudo >/dev/null 2>&1; then
        as_root=(sudo)
        [[ -t 0 ]] || as_root+=(-n)  # never hang on a password prompt without a terminal
    else
        die "missing ${missing[*]}: run as root or install sudo"
    fi
    apt_log="$(mktemp)"
    trap 'rm -f "$apt_log"' EXIT
    apt() {
        "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Use-Pty=0 "$@" \
            >"$apt_log" 2>&1 || { cat "$apt_log" >&2; die "apt-get $1 failed"; }
    }
    say "apt-get update"
    apt update
    say "apt-get install ${missing[*]}"
    apt install --no-install-recommends "${missing[@]}"
    have_postgres || die "postgresql installed but no /usr/lib/postgresql/*/bin/initdb found"
fi

# --- 2. virtualenv ----------------------------------------------------------------------
if [[ ! -x "$VENV/bin/python" ]]; then
    say "creating $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
    rm -f "$STAMP"
fi

# --- 3. python dependencies -------------------------------------------------------------
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [[ "$want" == "$have" ]]; then
    say "python dependencies up to date"
else
    say "pip install -e .[dev]"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[dev]"
    printf '%s\n' "$want" >"$STAMP"
fi

say "ready"
