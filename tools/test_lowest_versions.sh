#!/usr/bin/env bash
# Do the notebooks still run on the oldest versions requirements.txt allows?
#   bash tools/test_lowest_versions.sh [VENV_DIR]      (default .venv-lowest; takes a few minutes)
# Builds a fresh environment from tools/requirements-lowest.txt, then runs every notebook with
# --nbval-lax: each cell must run without an error; outputs are not compared (they were stored
# with the newest versions, and some printed numbers differ between versions).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv-lowest}
python3 -m venv "$venv"
. "$venv/bin/activate"
python -m pip install --quiet --upgrade pip
start=$(date +%s)
python -m pip install --quiet -r tools/requirements-lowest.txt
echo "install: $(( $(date +%s) - start )) s"
python -m pip list 2>/dev/null | grep -iE '^(tensorflow|keras|numpy|pandas|matplotlib|mlxtend) '
start=$(date +%s)
pytest -o addopts="" -p no:cacheprovider --nbval-lax --nbval-current-env --nbval-cell-timeout=900 notebooks/
echo "notebooks on the lowest versions: $(( $(date +%s) - start )) s"
