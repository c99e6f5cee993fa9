#!/usr/bin/env bash
# The console tests drive Debian's Chromium with Playwright; never Playwright's own browser download.
set -u
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the console tests"
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || true
fi
if [ ! -x /usr/bin/chromium ]; then
  echo "WARNING: /usr/bin/chromium is missing; the browser tests will be skipped." >&2
fi
exit 0
