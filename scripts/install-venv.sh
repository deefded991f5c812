#!/usr/bin/env bash
# Create the development virtualenv and install every Fedgrid package into it, editable.
set -euo pipefail
python=$1
venv=$2
test -x "$venv/bin/python" || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade "pip>=24,<27"
# torch first and pinned exactly: the local CPU wheel satisfies it; an open range pulls CUDA.
"$venv/bin/python" -m pip install -q "torch==2.13.0"
"$venv/bin/python" -m pip install -q \
    -e protocol -e apps/common -e "plans[compiler,data]" -e apps/node -e apps/network \
    -e "clients/python[data]" \
    -r requirements-dev.txt
