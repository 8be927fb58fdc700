#!/usr/bin/env bash
# Interoperability with relying-party libraries nobody here wrote: installs the Node packages openid-client
# (and oidc-provider, the upstream provider of tests/it/federation.rs)
# and Python's authlib into a temporary folder, then runs tests/it/interop.rs, which starts yunid and
# drives both libraries through code + PKCE, refresh, userinfo, introspection and logout.
#   tests/interop/run.sh                 install, then run the interop test
#   tests/interop/run.sh --install-only  install only (a later `cargo test` then finds the packages)
set -euo pipefail
cd "$(dirname "$0")/../.."

dir="${YUNID_INTEROP_DIR:-${TMPDIR:-/tmp}/yunid-interop}"
mkdir -p "$dir/node" "$dir/python"
# Pinned: openid-client and oidc-provider in tests/interop/package-lock.json, authlib and requests in requirements.txt.
cp tests/interop/package.json tests/interop/package-lock.json "$dir/node/"
npm ci --prefix "$dir/node" --no-audit --no-fund --loglevel=error >/dev/null
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --target "$dir/python" --upgrade -r tests/interop/requirements.txt
export YUNID_INTEROP_DIR="$dir"

if [ "${1:-}" != "--install-only" ]; then
  cargo test --locked --test it -- interop
fi
