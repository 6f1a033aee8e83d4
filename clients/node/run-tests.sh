#!/usr/bin/env bash
# Runs the Node client's unit tests: installs Node and npm when missing, and
# the pinned amqplib from package-lock.json when node_modules is missing or
# older than the lockfile (as scripts/browser-deps does), then Node's own
# test runner. The tests need no broker; tests/e2e/producers.rs runs the client
# against RabbitMQ and the worker. Exit code is the test runner's.
set -euo pipefail

cd "$(dirname "$0")"
source ../../scripts/lib/need.sh

need node:nodejs npm:npm

if [[ ! -d node_modules || package-lock.json -nt node_modules ]]; then
    echo "npm ci in clients/node" >&2
    npm ci --no-audit --no-fund --loglevel=error
    touch node_modules
fi

exec node --test test/ "$@"
