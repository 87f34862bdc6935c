#!/usr/bin/env bash
# CI for the npm package (issue 14): every package comes from the npm registry at the
# versions the lock files pin. Needs node >= 20.19, npm, and the repository's Python venv
# (.venv, or $ADMINSTATS_PYTHON) for the real server the React tests talk to.
#
#   1. npm ci in js/ (typescript, @types/react, jsdom, React 19) and js/test/react-18/
#   2. npm pack: the prepack script (build.mjs) copies asgi_adminstats/static/*.js, the
#      `./react` entry and the declarations into js/dist/ (and checks the version)
#   3. tsc --noEmit over js/test/types-check.ts against the declarations
#   4. node --test js/test/: the hook on React 18 and 19 (react-dom, jsdom) against a real
#      server, the served files against dist/, the declarations against the exports
#   5. examples/vite-react: npm ci, the tarball from step 2 installed, tsc + vite build
set -euo pipefail
JS_DIR="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$JS_DIR")"
EXAMPLE="$ROOT/examples/vite-react"
START=$SECONDS
step() { echo "--- js/ci.sh [$((SECONDS - START)) s] $*"; }

PACK_DIR="$(mktemp -d)"
trap 'rm -rf "$PACK_DIR"' EXIT

step "npm ci (js/, js/test/react-18/)"
npm ci --prefix "$JS_DIR" --no-audit --no-fund
npm ci --prefix "$JS_DIR/test/react-18" --no-audit --no-fund

step "npm pack (prepack: node build.mjs, run here first to show what it copies)"
cd "$JS_DIR"
node build.mjs
tarball="$PACK_DIR/$(npm pack --pack-destination "$PACK_DIR" | tail -n 1)"
contents="$(tar -tzf "$tarball" | sort)"
printf 'packed %s:\n%s\n' "$tarball" "$contents"
for file in adminstats.js adminstats.d.ts react.js react.d.ts use-admin-websocket.js use-admin-websocket.d.ts LICENSE; do
    grep -qx "package/dist/$file" <<<"$contents" || { echo "the tarball has no dist/$file" >&2; exit 1; }
done

step "tsc --noEmit (the declarations, as a user's code meets them)"
npx --no-install tsc --version
npx --no-install tsc --noEmit -p tsconfig.json

step "node --test test/ (React 18 and 19 against a real server)"
node --test --test-force-exit test/  # a leaked client (a failed test) must not hang CI

step "examples/vite-react: npm ci, install the tarball, build"
cd "$EXAMPLE"
npm ci --no-audit --no-fund
npm install --no-save --no-audit --no-fund "$tarball"
rm -rf dist
npm run build
test -f dist/index.html
grep -q "adminstats.v1" dist/assets/*.js || { echo "the built app has no adminstats client" >&2; exit 1; }

step "done: js/ci.sh passed in $((SECONDS - START)) s"
