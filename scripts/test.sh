#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, then runs them.
#   ./scripts/test.sh [pytest args...]
# 0. Debian's prometheus (2.42, with promtool) and prometheus-alertmanager (0.25, with amtool)
#    for the rule tests and the Prometheus/Alertmanager end-to-end tests, and chromium for the
#    demo report screenshot test (apt-get, unless already on PATH).
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

install_system_packages() {  # apt-get install prometheus prometheus-alertmanager chromium, unless present
  if command -v prometheus >/dev/null && command -v promtool >/dev/null && command -v amtool >/dev/null \
      && { command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null; } \
      && command -v chromium >/dev/null; then
    return 0
  fi
  echo "== installing prometheus, prometheus-alertmanager and chromium (apt-get)"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if $sudo apt-get update -q >/dev/null \
      && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends \
        prometheus prometheus-alertmanager chromium >/dev/null; then
    return 0
  fi
  if [ "${CI:-}" = "true" ]; then
    echo "apt-get install prometheus prometheus-alertmanager chromium failed" >&2
    return 1
  fi
  echo "warning: prometheus/prometheus-alertmanager/chromium not installed: their tests will be skipped" >&2
}

install_system_packages
make_venv .venv-test "$TORCH_PIN"
.venv-test/bin/python -c "import otel_mlmon, sklearn, rotel, pandas, torch, yaml, opentelemetry.exporter.prometheus"  # fail early on a failed install
echo "== with PyTorch: every test"
run_pytest .venv-test otel_mlmon tests "$@"

make_venv .venv-test-notorch
.venv-test-notorch/bin/python -m pip uninstall --quiet --yes torch >/dev/null 2>&1 || true
.venv-test-notorch/bin/python -c "
import importlib.util, sys
sys.exit('torch is installed in the no-torch environment' if importlib.util.find_spec('torch') else 0)"
echo "== without PyTorch: every test not marked torch"
# Modules that import torch at the top are not even collected there (their tests are all marked torch).
run_pytest .venv-test-notorch otel_mlmon tests -m "not torch" --ignore=tests/test_torch.py --ignore=tests/test_torch_data_monitoring.py "$@"
