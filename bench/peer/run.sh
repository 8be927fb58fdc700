#!/usr/bin/env bash
# The peer comparison of issue 9: installs the npm package oidc-provider into a temporary folder,
# starts it (pinned to core 0, like yunid) with an equivalent configuration (provider.mjs), and runs
# the same scenarios against yunid and the peer in one run; prints the ratio per scenario. Default
# scenarios: cc, cc_newconn, discovery, jwks, introspect, userinfo, refresh, sso_code, password_login
# (see BENCHMARKS.md for how the peer's side differs). PEER_ID_TOKEN_ALG=ES256 signs the peer's ID
# tokens with ES256 (pass --id-token-alg ES256 for yunid's).
#
#   bench/peer/run.sh [extra yunid-bench compare options, e.g. --duration 20 --concurrency 32]
#
# Needs node and npm, and a release build: cargo build --release --workspace --bins.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
bench=${BENCH_BIN:-$target/release/yunid-bench}
[ -x "$bench" ] || { echo "no $bench: cargo build --release --workspace --bins first" >&2; exit 1; }

work=$(mktemp -d /tmp/yunid-peer.XXXXXX)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

cd "$work"
npm init -y >/dev/null
npm install --no-audit --no-fund --loglevel=error "oidc-provider@${PEER_VERSION:-9}" >/dev/null
cp "$here/provider.mjs" .
version=$(node -p "require('./node_modules/oidc-provider/package.json').version")

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
secret=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
app_secret=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
pin=(taskset -c 0)
command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ] || pin=()
NODE_ENV=production PORT=$port CC_SECRET=$secret APP_SECRET=$app_secret \
  PEER_ID_TOKEN_ALG=${PEER_ID_TOKEN_ALG:-RS256} "${pin[@]}" node provider.mjs >"$work/peer.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/.well-known/openid-configuration" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/.well-known/openid-configuration" >/dev/null || { cat "$work/peer.log"; exit 1; }
# One token by hand: it must be an ES256 JWT.
curl -fsS -u "bench-cc:$secret" -d grant_type=client_credentials "http://127.0.0.1:$port/token" \
  | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const t=JSON.parse(s).access_token;const h=JSON.parse(Buffer.from(t.split(".")[0],"base64url"));if(h.alg!=="ES256"){console.error("peer token is not ES256:",h);process.exit(1)}console.log("peer access token header:",JSON.stringify(h))})'
echo "peer: oidc-provider $version on node $(node --version), pid $pid"

"$bench" compare --peer-base "http://127.0.0.1:$port" --peer-pid "$pid" \
  --peer-client-id bench-cc --peer-client-secret "$secret" \
  --peer-app-id bench-app --peer-app-secret "$app_secret" "$@"
echo "peer log (last lines):"; tail -5 "$work/peer.log" || true
