#!/usr/bin/env bash
# Make sure redis-server is installed, for the tests that start their own Redis server
# (pytest_cachemock.integrations.redis_server). Installs it from the Debian packages when it is
# missing (apt-get update first); does nothing when it is there. Needs root (or sudo) to install.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "redis-server.sh: redis-server is missing and apt-get is not here; install Redis" >&2
  echo "  (brew install redis, dnf install redis, ...) and run again" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null
# The package may start a system server on port 6379: the tests do not use it.
redis-server --version
