#!/usr/bin/env bash
# Runs the PHP client's tests: installs the Debian packages they need when
# missing, then PHPUnit. Needs RabbitMQ at 127.0.0.1:5672 (guest/guest).
# Exit code is PHPUnit's.
set -euo pipefail

cd "$(dirname "$0")"

packages=(php-cli php-amqplib php-curl php-mbstring php-xml phpunit)
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$package")
    fi
done

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

exec phpunit --configuration phpunit.xml.dist "$@"
