#!/usr/bin/env bash
# Runs the PHP client's tests: installs the Debian packages they need when
# missing, then PHPUnit. Needs RabbitMQ at 127.0.0.1:5672 (guest/guest).
# Exit code is PHPUnit's.
set -euo pipefail

cd "$(dirname "$0")"
source ../../scripts/lib/need.sh

need php-cli php-amqplib php-curl php-mbstring php-xml phpunit

exec phpunit --configuration phpunit.xml.dist "$@"
