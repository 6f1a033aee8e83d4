#!/usr/bin/env bash
# Runs the Python client's unit tests: installs the pika version pinned in
# pyproject.toml when it is missing (or another version is installed), then
# the standard library's unittest. The tests need no broker;
# tests/e2e/producers.rs runs the client against RabbitMQ and the worker.
# Exit code is unittest's.
set -euo pipefail

cd "$(dirname "$0")"

pika_pin=$(grep -o 'pika==[0-9][0-9.]*' pyproject.toml)
if [[ $(python3 -c 'import pika; print("pika==" + pika.__version__)' 2>/dev/null) != "$pika_pin" ]]; then
    echo "Installing $pika_pin" >&2
    pip_install=(env PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check "$pika_pin")
    # A Debian-managed python3 refuses pip installs (PEP 668) unless told;
    # the pinned version is what the tests need, so it is told.
    "${pip_install[@]}" || "${pip_install[@]}" --break-system-packages
fi

exec python3 -m unittest discover --start-directory tests --top-level-directory . "$@"
