#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, then runs them.
#   ./scripts/test.sh [pytest args...]
# 1. .venv-test: the package with its test extra (scikit-learn, pandas, rotel: the real OTLP
#    collector the end-to-end tests export to) and PyTorch (the local CPU build, pinned here
#    only: a bare `torch` requirement would pull several GB of CUDA packages); every test.
# 2. .venv-test-notorch: the same without PyTorch; every test not marked `torch`.
# With CI=true nothing is skipped for a missing component: the tests raise instead.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TORCH_PIN=${OTEL_MLMON_TEST_TORCH:-torch==2.13.0}

quiet_pip() {  # pip, without the noise of this machine's optional local indexes
  "$1/bin/python" -m pip install --quiet --disable-pip-version-check "${@:2}" 2>&1 | grep -v "^WARNING: Location" || true
}

make_venv() {  # make_venv DIR [extra packages...]
  local venv=$1
  [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
  quiet_pip "$venv" -e ".[test]" "${@:2}"
}

run_pytest() {  # run_pytest VENV [pytest args...]; pytest's "no tests collected" is a failure
  set +e
  "$1/bin/python" -m pytest -p no:cacheprovider --doctest-modules "${@:2}"
  local status=$?
  set -e
  if [ "$status" -eq 5 ]; then echo "no tests were collected: failing" >&2; return 1; fi
  return "$status"
}

make_venv .venv-test "$TORCH_PIN"
.venv-test/bin/python -c "import otel_mlmon, sklearn, rotel, pandas, torch"  # fail early on a failed install
echo "== with PyTorch: every test"
run_pytest .venv-test otel_mlmon tests "$@"

make_venv .venv-test-notorch
.venv-test-notorch/bin/python -m pip uninstall --quiet --yes torch >/dev/null 2>&1 || true
.venv-test-notorch/bin/python -c "
import importlib.util, sys
sys.exit('torch is installed in the no-torch environment' if importlib.util.find_spec('torch') else 0)"
echo "== without PyTorch: every test not marked torch"
run_pytest .venv-test-notorch otel_mlmon tests -m "not torch" --ignore=tests/test_torch.py "$@"
