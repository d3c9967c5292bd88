#!/usr/bin/env bash
# Build the viewer's front-end (web/) into src/tether/web/static/, which the Python package
# serves and ships. npm packages come from the npm registry (web/package-lock.json pins them);
# nothing is fetched at run time. Quick no-op when the build is newer than every source.
# Usage: scripts/build-web.sh [--force]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
web="$root/web"
stamp="$root/src/tether/web/static/index.html"

if [ "${1:-}" != "--force" ] && [ -f "$stamp" ]; then
  newer="$(find "$web" -path "$web/node_modules" -prune -o -type f -newer "$stamp" -print -quit)"
  if [ -z "$newer" ]; then
    exit 0
  fi
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "build-web: npm is missing; install Node.js (>= 20) and npm to build the viewer" >&2
  exit 1
fi
cd "$web"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
