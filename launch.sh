#!/usr/bin/env bash
# The one front door of acnn-jax. Usage:
#   ./launch.sh setup                      make .venv and install the project
#   ./launch.sh test [pytest args]         setup if needed, run the test suite
#                                          (-m "not slow": the quick part)
#   ./launch.sh demo [WORKDIR]             setup if needed, run the built-in demo
#   ./launch.sh train CONFIG WORKDIR [--config.field=value ...]   one phase
#   ./launch.sh all WORKDIR [--config.field=value ...]            phases A, B, C
# Environment: PYTHON (interpreter for the venv, default python3), ACNN_VENV
# (venv folder, default .venv).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

PYTHON=${PYTHON:-python3}
VENV=${ACNN_VENV:-.venv}
STAMP="$VENV/.acnn_installed"

die() { echo "launch.sh: error: $*" >&2; exit 1; }

setup() {
  command -v "$PYTHON" >/dev/null 2>&1 ||
    die "no '$PYTHON' on PATH. Install Python 3.10 or newer, or set PYTHON=/path/to/python3."
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    die "$("$PYTHON" --version 2>&1) is too old: acnn-jax needs Python 3.10 or newer (set PYTHON=...)."
  if [ ! -x "$VENV/bin/python" ]; then
    echo "launch.sh: creating $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV" ||
      die "'$PYTHON -m venv $VENV' failed (on Debian/Ubuntu: apt-get install python3-venv)."
  fi
  echo "launch.sh: installing acnn-jax and its dependencies into $VENV (about a minute)"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  "$VENV/bin/python" -m pip install -q -e ".[test]" ||
    die "pip install failed (see the messages above); fix the cause and rerun './launch.sh setup'."
  # Remember what was installed, so later commands skip the install.
  cp setup.py "$STAMP"
}

ensure_setup() {
  if [ ! -f "$STAMP" ] || ! cmp -s setup.py "$STAMP"; then setup; fi
}

py() { "$VENV/bin/python" "$@"; }

cmd=${1:-help}
shift || true
case "$cmd" in
  setup) setup ;;
  test)
    ensure_setup
    # Two workers fill the two cores of a CI machine; fake CPU devices are set
    # in tests/conftest.py. loadgroup keeps the tests that share the trained
    # workdir fixture on one worker, so it is trained once.
    py -m pytest tests -n 2 --dist loadgroup -q "$@" ;;
  demo)
    ensure_setup
    # An optional first word that is not a flag is the workdir.
    if [ $# -ge 1 ] && [ "${1#--}" = "$1" ]; then
      set -- --workdir="$1" "${@:2}"
    fi
    py -m acnn_jax.demo "$@" ;;
  train)
    [ $# -ge 2 ] || die "usage: ./launch.sh train CONFIG WORKDIR [--config.field=value ...]"
    ensure_setup
    config=$1 workdir=$2
    shift 2
    py -m acnn_jax.main --config="$config" --workdir="$workdir" "$@" ;;
  all)
    [ $# -ge 1 ] || die "usage: ./launch.sh all WORKDIR [--config.field=value ...]"
    ensure_setup
    workdir=$1
    shift
    for phase in a b c; do
      py -m acnn_jax.main --config="configs/phase_$phase.py" --workdir="$workdir" "$@"
    done ;;
  help|-h|--help) sed -n '2,11p' "$0" ;;
  *) die "unknown command '$cmd'; run './launch.sh help'." ;;
esac
