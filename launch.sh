#!/usr/bin/env bash
# The one front door of acnn-jax. Usage:
#   ./launch.sh setup                      make .venv and install the project
#   ./launch.sh test [pytest args]         setup if needed, run the quick tests
#                                          (every test not marked slow)
#   ./launch.sh test --all [pytest args]   the same, with the slow tests (CI)
#   ./launch.sh demo [WORKDIR]             setup if needed, run the built-in demo
#                                          (WORKDIR default: runs/demo)
#   ./launch.sh train CONFIG WORKDIR [--config.field=value ...]   one phase
#   ./launch.sh all WORKDIR [--config.field=value ...]            phases A, B, C
# Relative paths (WORKDIR, CONFIG, --workdir=, --config.manual_dir=,
# --config.data_dir=, --config.init_from=) are relative to the directory you
# run it from; a CONFIG not found there is looked up in the repository, so
# configs/phase_a.py works from anywhere.
# Environment: PYTHON (interpreter for the venv, default python3), ACNN_VENV
# (venv folder, default .venv in the repository).
set -euo pipefail
# Relative paths the user gave mean the directory they ran this from; the
# commands themselves run in the repository (setup.py, configs/, tests/).
USER_DIR=$PWD
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# The absolute form of a path the user gave: '' and URLs (gs://...) stay.
user_path() {
  case "$1" in
    '' | /* | *://*) printf '%s\n' "$1" ;;
    '~') printf '%s\n' "$HOME" ;;
    '~/'*) printf '%s\n' "$HOME/${1#'~/'}" ;;
    *) local p=$1
       while [ "${p#./}" != "$p" ]; do p=${p#./}; done
       printf '%s\n' "$USER_DIR/${p:-.}" ;;
  esac
}

# A config file, with its optional ':argument': the user's file if there is
# one, else the repository's (configs/phase_a.py works from anywhere).
config_path() {
  local file=${1%%:*} rest=
  [ "$file" = "$1" ] || rest=:${1#*:}
  case "$file" in
    /* | '~'*) ;;
    *) if [ ! -e "$(user_path "$file")" ] && [ -e "$REPO/$file" ]; then
         printf '%s\n' "$REPO/$file$rest"; return
       fi ;;
  esac
  printf '%s\n' "$(user_path "$file")$rest"
}

# Rewrites the path-valued flags of "$@" into ARGS, in both absl forms
# (--flag=value and --flag value).
ARGS=()
resolve_flags() {
  ARGS=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --workdir=* | --config.manual_dir=* | --config.data_dir=* | \
      --config.init_from=*)
        ARGS+=("${1%%=*}=$(user_path "${1#*=}")") ;;
      --config=*) ARGS+=("--config=$(config_path "${1#*=}")") ;;
      --workdir | --config.manual_dir | --config.data_dir | --config.init_from)
        ARGS+=("$1")
        if [ $# -ge 2 ]; then ARGS+=("$(user_path "$2")"); shift; fi ;;
      --config)
        ARGS+=("$1")
        if [ $# -ge 2 ]; then ARGS+=("$(config_path "$2")"); shift; fi ;;
      *) ARGS+=("$1") ;;
    esac
    shift
  done
}

cd "$REPO"
PYTHON=${PYTHON:-python3}
case "$PYTHON" in */*) PYTHON=$(user_path "$PYTHON") ;; esac
VENV=$REPO/.venv
[ -z "${ACNN_VENV:-}" ] || VENV=$(user_path "$ACNN_VENV")
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
    # The quick tier leaves out the tests marked slow (training runs,
    # subprocesses that load JAX or TensorFlow, the notebook, the full-size
    # network); --all keeps them. A -m of the user's comes later and wins.
    # Test files named from another directory (e.g. from tests/:
    # ../launch.sh test test_pckh.py) are found there.
    # Naming test files runs those; naming none runs tests/.
    ARGS=() where=tests tier=(-m "not slow")
    for arg in "$@"; do
      if [ "$arg" = --all ]; then tier=(); continue; fi
      if [ "${arg#-}" = "$arg" ] && [ -e "$(user_path "${arg%%::*}")" ]; then
        arg=$(user_path "$arg") where=
      fi
      ARGS+=("$arg")
    done
    # Two workers fill the two cores of a CI machine; fake CPU devices are set
    # in tests/conftest.py. loadgroup keeps the tests that share the trained
    # workdir fixture on one worker, so it is trained once.
    py -m pytest $where -n 2 --dist loadgroup -q ${tier[@]+"${tier[@]}"} \
      ${ARGS[@]+"${ARGS[@]}"} ;;
  demo)
    ensure_setup
    # An optional first word that is not a flag is the workdir.
    if [ $# -ge 1 ] && [ "${1#--}" = "$1" ]; then
      set -- --workdir="$1" "${@:2}"
    fi
    # The demo's own default workdir, runs/demo, is the user's too.
    case " $* " in *" --workdir"*) ;; *) set -- --workdir=runs/demo "$@" ;; esac
    resolve_flags "$@"
    py -m acnn_jax.demo "${ARGS[@]}" ;;
  train)
    [ $# -ge 2 ] || die "usage: ./launch.sh train CONFIG WORKDIR [--config.field=value ...]"
    ensure_setup
    config=$(config_path "$1") workdir=$(user_path "$2")
    shift 2
    resolve_flags "$@"
    py -m acnn_jax.main --config="$config" --workdir="$workdir" \
      ${ARGS[@]+"${ARGS[@]}"} ;;
  all)
    [ $# -ge 1 ] || die "usage: ./launch.sh all WORKDIR [--config.field=value ...]"
    ensure_setup
    workdir=$(user_path "$1")
    shift
    resolve_flags "$@"
    for phase in a b c; do
      py -m acnn_jax.main --config="$REPO/configs/phase_$phase.py" \
        --workdir="$workdir" ${ARGS[@]+"${ARGS[@]}"}
    done ;;
  help|-h|--help) sed -n '2,16p' "$REPO/$(basename "${BASH_SOURCE[0]}")" ;;
  *) die "unknown command '$cmd'; run './launch.sh help'." ;;
esac
