#!/usr/bin/env bash
# The peer comparison of issues 9 and 17: installs node oidc-provider (the versions pinned in
# package-lock.json) into a temporary folder, starts it (pinned to core 0, like yunid) with an
# equivalent configuration (provider.mjs), and runs the same scenarios against yunid and the peer in
# one run; prints the ratio per scenario. Default scenarios: cc, cc_newconn, discovery, jwks,
# introspect, userinfo, refresh, sso_code, password_login (see BENCHMARKS.md for how the peer's side
# differs).
#
#   bench/peer/run.sh [extra yunid-bench compare options, e.g. --duration 20 --concurrency 32]
#
# PEER_ADAPTER=memory (default) | redis | both: the provider's in-memory adapter, the Redis adapter
#   (redis_adapter.mjs; PEER_REDIS_URL, default redis://127.0.0.1:6379), or one provider of each, both
#   measured in the same run and shown side by side.
# PEER_ID_TOKEN_ALG=ES256 signs the peer's ID tokens with ES256 (pass --id-token-alg ES256 for yunid's).
# PEER_VERSION=9.x installs that oidc-provider instead of the locked one.
#
# Needs node and npm, and a release build: cargo build --release --workspace --bins.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
bench=${BENCH_BIN:-$target/release/yunid-bench}
[ -x "$bench" ] || { echo "no $bench: cargo build --release --workspace --bins first" >&2; exit 1; }
adapter=${PEER_ADAPTER:-memory}
case "$adapter" in
  memory) kinds=(memory) ;;
  redis) kinds=(redis) ;;
  both) kinds=(memory redis) ;;
  *) echo "PEER_ADAPTER must be memory, redis or both, not $adapter" >&2; exit 1 ;;
esac
export PEER_REDIS_URL=${PEER_REDIS_URL:-redis://127.0.0.1:6379}

work=$(mktemp -d /tmp/yunid-peer.XXXXXX)
pids=()
cleanup() {
  # SIGTERM: a Redis-backed provider removes its keys before it exits.
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

cd "$work"
cp "$here/package.json" "$here/package-lock.json" "$here/provider.mjs" "$here/redis_adapter.mjs" .
if [ -n "${PEER_VERSION:-}" ]; then
  npm install --no-audit --no-fund --loglevel=error "oidc-provider@$PEER_VERSION" >/dev/null
else
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi
version=$(node -p "require('./node_modules/oidc-provider/package.json').version")

secret=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
app_secret=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
pin=(taskset -c 0)
command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ] || pin=()
peer_args=()
for kind in "${kinds[@]}"; do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  NODE_ENV=production PORT=$port CC_SECRET=$secret APP_SECRET=$app_secret PEER_ADAPTER=$kind \
    PEER_ID_TOKEN_ALG=${PEER_ID_TOKEN_ALG:-RS256} "${pin[@]}" node provider.mjs >"$work/peer-$kind.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/.well-known/openid-configuration" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS "http://127.0.0.1:$port/.well-known/openid-configuration" >/dev/null || { cat "$work/peer-$kind.log"; exit 1; }
  # One token by hand: it must be an ES256 JWT.
  curl -fsS -u "bench-cc:$secret" -d grant_type=client_credentials "http://127.0.0.1:$port/token" \
    | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const t=JSON.parse(s).access_token;const h=JSON.parse(Buffer.from(t.split(".")[0],"base64url"));if(h.alg!=="ES256"){console.error("peer token is not ES256:",h);process.exit(1)}console.log("peer access token header:",JSON.stringify(h))})'
  echo "peer ($kind adapter): oidc-provider $version on node $(node --version), pid $pid"
  peer_args+=(--peer-base "http://127.0.0.1:$port" --peer-pid "$pid" --peer-label "$kind")
done
if [[ " ${kinds[*]} " == *" redis "* ]]; then
  echo "redis: $PEER_REDIS_URL, $(redis-cli -u "$PEER_REDIS_URL" info server 2>/dev/null | tr -d '\r' | grep -m1 '^redis_version:' || echo 'version unknown');" \
    "appendonly $(redis-cli -u "$PEER_REDIS_URL" config get appendonly 2>/dev/null | tail -1)," \
    "save '$(redis-cli -u "$PEER_REDIS_URL" config get save 2>/dev/null | tail -1)'"
fi

"$bench" compare "${peer_args[@]}" \
  --peer-client-id bench-cc --peer-client-secret "$secret" \
  --peer-app-id bench-app --peer-app-secret "$app_secret" "$@"
for kind in "${kinds[@]}"; do echo "peer ($kind) log (last lines):"; tail -5 "$work/peer-$kind.log" || true; done
