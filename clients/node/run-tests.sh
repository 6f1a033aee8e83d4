#!/usr/bin/env bash
# Runs the Node client's unit tests: installs Node and npm when missing, and
# the pinned amqplib from package-lock.json when node_modules is missing or
# older than the lockfile (as scripts/browser-deps does), then Node's own
# test runner. The tests need no broker; tests/producers.rs runs the client
# against RabbitMQ and the worker. Exit code is the test runner's.
set -euo pipefail

cd "$(dirname "$0")"

missing=()
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]} > 0)); then
    echo "Installing missing Debian packages: ${missing[*]}" >&2
    sudo_cmd=()
    if [[ $(id -u) -ne 0 ]]; then
        sudo_cmd=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -q
    "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [[ ! -d node_modules || package-lock.json -nt node_modules ]]; then
    echo "npm ci in clients/node" >&2
    npm ci --no-audit --no-fund --loglevel=error
    touch node_modules
fi

exec node --test test/ "$@"
