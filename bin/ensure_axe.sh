#!/usr/bin/env bash
# axe-core (npm, pinned) for the console's accessibility sweep (tests/test_console_layout.py), installed into the
# gitignored .tools/ directory; the test injects .tools/node_modules/axe-core/axe.min.js into Chromium pages.
set -u
AXE_VERSION=4.14.1
cd "$(dirname "$0")/.."
AXE=.tools/node_modules/axe-core
if [ -f "$AXE/axe.min.js" ] && grep -q "\"version\": \"$AXE_VERSION\"" "$AXE/package.json" 2>/dev/null; then exit 0; fi
if ! command -v npm >/dev/null 2>&1; then
  echo "WARNING: npm is missing; the accessibility checks will be skipped." >&2
  exit 0
fi
echo "installing axe-core $AXE_VERSION into .tools/"
mkdir -p .tools
npm install --prefix .tools --no-save --no-audit --no-fund --silent "axe-core@$AXE_VERSION" >/dev/null \
  || echo "WARNING: could not install axe-core; the accessibility checks will be skipped." >&2
exit 0
