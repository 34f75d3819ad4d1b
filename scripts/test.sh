#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, then runs them.
#   ./scripts/test.sh [pytest args...]
# Everything a test needs is installed here; with CI=true nothing is skipped for a missing
# component (the tests raise instead).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${OTEL_MLMON_TEST_VENV:-.venv-test}

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
# rotel (in the test extra) ships the real OTLP collector the end-to-end tests talk to.
"$VENV/bin/python" -m pip install --quiet -e ".[test]" 2>&1 | grep -v "^WARNING: Location" || true
"$VENV/bin/python" -c "import otel_mlmon, sklearn, rotel, pandas" # fail early if an install failed

set +e
"$VENV/bin/python" -m pytest -p no:cacheprovider --doctest-modules otel_mlmon tests "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "no tests were collected: failing" >&2
  exit 1
fi
exit "$status"
