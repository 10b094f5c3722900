#!/usr/bin/env bash
# The agent's benchmarks of issue 6, in one run, into OUT_DIR (default
# out/bench-agent) for docs/benchmarks.md and scripts/plot_benchmarks.py:
#   1. http_load: forward-auth (/v1/auth-request) and /v1/check at a fixed
#      rate (RATE, default 5000/s), beside the /healthz baseline (same
#      server, no decision), against a standalone vakt-agent with the
#      healthcare bundle on AGENT_THREADS (1) HTTP threads;
#   2. extauthz_load: Envoy ext_authz at the same fixed rate, and closed
#      loop (maximum throughput), against the same agent's gRPC listener
#      (mTLS-bound tokens: nothing single-use, see docs/agent-envoy.md);
#   3. the agent's resident memory after the load;
#   4. agent_swap: decisions while a signed 10,000-route bundle is swapped in
#      every second, beside a no-swap baseline.
# Needs the healthcare example's private keys (examples/healthcare/keys/
# generate.sh writes them; they are git-ignored).
#
# usage: scripts/bench_agent.sh [OUT_DIR]
# env:   BUILD_DIR, RATE (5000), SECONDS_PER_RUN (5), ROUNDS (3), AGENT_THREADS (1)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BUILD_DIR:-$ROOT/build}"
OUT="${1:-$ROOT/out/bench-agent}"
RATE="${RATE:-5000}"
SECS="${SECONDS_PER_RUN:-5}"
ROUNDS="${ROUNDS:-3}"
AGENT_THREADS="${AGENT_THREADS:-1}"
KEYS="$ROOT/examples/healthcare/keys/private"
mkdir -p "$OUT"
WORK="$(mktemp -d)"
AGENT_PID=""
cleanup() { [[ -n "$AGENT_PID" ]] && kill "$AGENT_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

[[ -f "$KEYS/issuer-es256.jwk" && -f "$KEYS/client-cert.pem" ]] || {
  echo "bench_agent.sh: run examples/healthcare/keys/generate.sh first" >&2; exit 2; }
echo "machine: $(nproc) cores; $(date -u +%FT%TZ); load $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/machine.txt"

"$BUILD/compiler/vakt" build "$ROOT/examples/healthcare/policy" -o "$WORK/h.vkb" >/dev/null
"$BUILD/agent/vakt-agent" --bundle "$WORK/h.vkb" --log-level warn \
  --http-listen 127.0.0.1:0 --http-port-file "$WORK/http.port" --http-threads "$AGENT_THREADS" \
  --ext-authz-listen 127.0.0.1:0 --ext-authz-port-file "$WORK/grpc.port" \
  --trusted-proxy 127.0.0.1/32 &
AGENT_PID=$!
for _ in $(seq 100); do [[ -s "$WORK/http.port" && -s "$WORK/grpc.port" ]] && break; sleep 0.05; done
HTTP="127.0.0.1:$(cat "$WORK/http.port")"
GRPC="127.0.0.1:$(cat "$WORK/grpc.port")"
rss() { awk '/VmRSS/ {print $2}' "/proc/$AGENT_PID/status"; }
echo "agent RSS at start: $(rss) KiB" | tee "$OUT/memory.txt"

# This VM's scheduling noise moves a p99 by 2x from one run to the next, so
# every kind runs ROUNDS times, interleaved with its baseline; quote medians.
KINDS="healthz,auth-allow,auth-deny,check-allow,check-deny"
ALL="$KINDS"
for _ in $(seq 2 "$ROUNDS"); do ALL="$ALL,$KINDS"; done
echo "== http_load: $RATE requests/s, $SECS s per kind, $ROUNDS rounds"
"$BUILD/bench/http_load" --target "$HTTP" --rate "$RATE" --seconds "$SECS" --connections 16 \
  --kinds "$ALL" --json | tee "$OUT/http_load.json"

# The agent's own view: the decision-duration histogram of every decision
# above (the time inside Agent::Decide, without the transport).
curl -s "http://$HTTP/metrics" | grep '^vakt_agent_decision_duration_seconds' > "$OUT/decision_histogram.txt"
cat "$OUT/decision_histogram.txt"

echo "== extauthz_load: $RATE requests/s (baseline: --auth none), then closed loop"
EXT=(--target "$GRPC" --issuer-key "$KEYS/issuer-es256.jwk" --client-cert "$KEYS/client-cert.pem")
: > "$OUT/extauthz_rate.txt"
for _ in $(seq "$ROUNDS"); do
  for auth in none mtls; do
    "$BUILD/bench/extauthz_load" "${EXT[@]}" --auth "$auth" --rate "$RATE" --seconds "$SECS" --json \
      | tee -a "$OUT/extauthz_rate.txt"
  done
done
"$BUILD/bench/extauthz_load" "${EXT[@]}" --concurrency 32 --seconds "$SECS" --json \
  | tee "$OUT/extauthz_max.txt"

echo "agent RSS after the load: $(rss) KiB" | tee -a "$OUT/memory.txt"
kill "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=""

echo "== agent_swap: 10,000 routes, a signed swap every second"
"$BUILD/bench/agent_swap" --routes 10000 --seconds 10 --json | tee "$OUT/agent_swap.txt"
echo "outputs in $OUT"
