#!/usr/bin/env bash
# Installs what building, testing and the demo need on Debian/Ubuntu, by package name. Safe to run again:
# packages already present are not touched.
#
#   libpq-dev, libcurl4-openssl-dev, libssl-dev, libzstd-dev   the C libraries behind CLibPQ, CCurl, COpenSSL and CZstd
#   postgresql                                     server binaries for the private test/demo cluster
#   pgbouncer                                      the pooler (transaction mode) the CLI tests also run through
#   findutils, python3, python3-pip, util-linux    find -printf (scanner), port picking, pip, runuser
#   the shellcheck package                         the deployment tests lint every script with it
#   openssl                                        a throwaway CA for the private-CA endpoint test
# Swift itself (6.2 or newer) must already be on PATH: https://www.swift.org/install/
set -euo pipefail

packages=(libpq-dev libcurl4-openssl-dev libssl-dev libzstd-dev pkg-config postgresql pgbouncer findutils python3 python3-pip util-linux shellcheck openssl)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v swift >/dev/null; then
    echo "setup: swift is not on PATH; install Swift 6.2 or newer from https://www.swift.org/install/" >&2
    exit 3
fi
