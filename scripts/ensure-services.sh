#!/usr/bin/env bash
# Install what the tests start or drive when it is missing: the queue tests' server
# binaries (redis-server, rabbitmq-server), git-lfs (the repository-state tests record
# in a git-lfs repository) and Chromium (the viewer's browser tests). Debian packages;
# needs root or sudo.
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] \
  || missing+=(rabbitmq-server)
command -v git-lfs >/dev/null 2>&1 || missing+=(git-lfs)
# The viewer's browser tests drive Debian's Chromium through Playwright.
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing ${missing[*]} for the queue and repository-state tests"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
