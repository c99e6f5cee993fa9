#!/usr/bin/env bash
# The local OpenID Provider (npm `oidc-provider`, pinned in deploy/oidc-provider/package.json and its lock file)
# that the SSO tests and `make run` start: installed into deploy/oidc-provider/node_modules (gitignored).
set -u
cd "$(dirname "$0")/../deploy/oidc-provider"
PINNED=$(sed -n 's/.*"oidc-provider": "\(.*\)".*/\1/p' package.json)
if [ -f node_modules/oidc-provider/package.json ] \
   && grep -q "\"version\": \"$PINNED\"" node_modules/oidc-provider/package.json; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "WARNING: npm is missing; the SSO tests that need the local OpenID Provider will be skipped." >&2
  exit 0
fi
echo "installing oidc-provider into deploy/oidc-provider/node_modules"
npm ci --no-audit --no-fund --silent >/dev/null \
  || echo "WARNING: could not install oidc-provider; the SSO browser tests will be skipped." >&2
exit 0
