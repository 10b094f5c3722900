#!/usr/bin/env bash
# Benchmarks the agent's HTTP decision interfaces with wrk on loopback: the
# `vakt-agent` daemon runs standalone with the healthcare bundle, and wrk
# drives /v1/forward-auth (Traefik/Caddy dialect) and POST /v1/check (a Lua
# script sets the body), first at maximum throughput, then at a fixed rate
# (wrk's -R when the wrk has it; Debian's wrk 4.1 has not, so the rate is
# paced by a Lua delay() per connection), and with one connection in a
# closed loop (the latency one request adds). Prints a summary table and
# the agent's resident memory.
#
# The DPoP replay cache refuses a repeated proof, so a replayed token+proof
# cannot measure the allow path of a FAPI route. Measured instead:
#   allow: GET /v1/health with TLS 1.3 facts from a trusted proxy (no token
#          needed: the transport profile runs, then the route allows)
#   deny:  GET /v1/patients/p-anna/records without a token (401 + challenge)
#
# usage: scripts/bench_agent_http.sh   (after scripts/build.sh)
# env:   BUILD_DIR (build), DURATION (10s), CONNECTIONS (32), WRK_THREADS (1),
#        AGENT_THREADS (1), RATE (5000, requests/s for the fixed-rate runs),
#        RATE_CONNECTIONS (50)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-32}"
WRK_THREADS="${WRK_THREADS:-1}"
AGENT_THREADS="${AGENT_THREADS:-1}"
RATE="${RATE:-5000}"
RATE_CONNECTIONS="${RATE_CONNECTIONS:-50}"
VAKT="$BUILD_DIR/compiler/vakt"
AGENT="$BUILD_DIR/agent/vakt-agent"

for tool in wrk curl; do
  command -v "$tool" >/dev/null || { echo "bench_agent_http: $tool is not installed (apt-get install $tool)" >&2; exit 2; }
done
for bin in "$VAKT" "$AGENT"; do
  [[ -x "$bin" ]] || { echo "bench_agent_http: $bin is missing (run scripts/build.sh)" >&2; exit 2; }
done

WORK="$(mktemp -d)"
AGENT_PID=""
cleanup() {
  if [[ -n "$AGENT_PID" ]]; then kill "$AGENT_PID" 2>/dev/null || true; wait "$AGENT_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

"$VAKT" build "$ROOT/examples/healthcare/policy" -o "$WORK/healthcare.vkb" >/dev/null
"$AGENT" --bundle "$WORK/healthcare.vkb" --http-listen 127.0.0.1:0 \
  --http-port-file "$WORK/port" --trusted-proxy 127.0.0.1/32 \
  --http-threads "$AGENT_THREADS" >"$WORK/agent.log" 2>&1 &
AGENT_PID=$!
for _ in $(seq 1 200); do
  [[ -s "$WORK/port" ]] && break
  kill -0 "$AGENT_PID" 2>/dev/null || { cat "$WORK/agent.log" >&2; exit 1; }
  sleep 0.05
done
[[ -s "$WORK/port" ]] || { echo "bench_agent_http: the agent wrote no port file" >&2; cat "$WORK/agent.log" >&2; exit 1; }
PORT="$(tr -d '[:space:]' < "$WORK/port")"
BASE="http://127.0.0.1:$PORT"

# Sanity: the two forward-auth paths answer what the summary says they do.
FA_ALLOW=(-H "X-Forwarded-Method: GET" -H "X-Forwarded-Uri: /v1/health"
          -H "X-Forwarded-Host: api.example.no" -H "X-Vakt-TLS-Version: TLSv1.3"
          -H "X-Vakt-TLS-Cipher: TLS_AES_128_GCM_SHA256")
FA_DENY=(-H "X-Forwarded-Method: GET" -H "X-Forwarded-Uri: /v1/patients/p-anna/records"
         -H "X-Forwarded-Host: api.example.no" -H "X-Vakt-TLS-Version: TLSv1.3"
         -H "X-Vakt-TLS-Cipher: TLS_AES_128_GCM_SHA256")
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
[[ "$(code "${FA_ALLOW[@]}" "$BASE/v1/forward-auth")" == 200 ]] || { echo "forward-auth allow path is not 200" >&2; exit 1; }
[[ "$(code "${FA_DENY[@]}" "$BASE/v1/forward-auth")" == 401 ]] || { echo "forward-auth deny path is not 401" >&2; exit 1; }

CHECK_ALLOW='{"method":"GET","path":"/v1/health","headers":{"host":"api.example.no"},"tls":{"version":"TLSv1.3","cipher":"TLS_AES_128_GCM_SHA256"}}'
CHECK_DENY='{"method":"GET","path":"/v1/patients/p-anna/records","headers":{"host":"api.example.no"},"tls":{"version":"TLSv1.3","cipher":"TLS_AES_128_GCM_SHA256"}}'

# lua NAME BODY DELAY_MS: a wrk script (POST body when BODY is set; a
# per-request delay when DELAY_MS > 0, which paces each connection).
lua() {
  local file="$WORK/$1.lua" body="$2" delay="$3"
  {
    if [[ -n "$body" ]]; then
      echo 'wrk.method = "POST"'
      printf 'wrk.body = [[%s]]\n' "$body"
      echo 'wrk.headers["Content-Type"] = "application/json"'
    fi
    if [[ "$delay" != 0 ]]; then
      printf 'function delay() return %s end\n' "$delay"
    fi
  } > "$file"
  echo "$file"
}

HAS_R=0
if wrk --help 2>&1 | grep -q -- '--rate\|-R'; then HAS_R=1; fi
DELAY_MS=$(( RATE_CONNECTIONS * 1000 / RATE ))
(( DELAY_MS > 0 )) || DELAY_MS=1

SUMMARY="$WORK/summary"
: > "$SUMMARY"
# run LABEL MODE ARGS...: one wrk run; its output, then a summary line.
run() {
  local label="$1" mode="$2"; shift 2
  local out="$WORK/out.txt"
  echo
  echo "== $label ($mode)"
  wrk --latency "$@" > "$out" 2>&1 || { cat "$out"; echo "wrk failed" >&2; exit 1; }
  cat "$out"
  local rps p50 p99 non2xx
  rps="$(awk '/^Requests\/sec:/ {print $2}' "$out")"
  p50="$(awk '$1 == "50%" {print $2}' "$out")"
  p99="$(awk '$1 == "99%" {print $2}' "$out")"
  non2xx="$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$out")"
  printf '%-44s %-10s %12s %10s %10s %10s\n' "$label" "$mode" "${rps:-?}" "${p50:-?}" "${p99:-?}" "${non2xx:-0}" >> "$SUMMARY"
}

max_args=(-t "$WRK_THREADS" -c "$CONNECTIONS" -d "$DURATION")
if (( HAS_R )); then
  rate_args=(-t "$WRK_THREADS" -c "$RATE_CONNECTIONS" -d "$DURATION" -R "$RATE")
  rate_mode="R=$RATE"
  rate_delay=0
else
  rate_args=(-t "$WRK_THREADS" -c "$RATE_CONNECTIONS" -d "$DURATION")
  rate_mode="~$RATE/s"
  rate_delay="$DELAY_MS"
fi

# Modes: max throughput; one connection in a closed loop (the added
# latency of one request, no queueing); the fixed rate.
for mode in max one rate; do
  case "$mode" in
    max) args=("${max_args[@]}"); m="max"; d=0 ;;
    one) args=(-t 1 -c 1 -d "$DURATION"); m="c=1"; d=0 ;;
    rate) args=("${rate_args[@]}"); m="$rate_mode"; d="$rate_delay" ;;
  esac
  run "forward-auth allow (GET /v1/health, TLS 1.3)" "$m" "${args[@]}" -s "$(lua fa "" "$d")" "${FA_ALLOW[@]}" "$BASE/v1/forward-auth"
  run "forward-auth deny (no token -> 401)" "$m" "${args[@]}" -s "$(lua fa "" "$d")" "${FA_DENY[@]}" "$BASE/v1/forward-auth"
  run "/v1/check allow (GET /v1/health)" "$m" "${args[@]}" -s "$(lua check_allow "$CHECK_ALLOW" "$d")" "$BASE/v1/check"
  run "/v1/check deny (no token -> 401 in JSON)" "$m" "${args[@]}" -s "$(lua check_deny "$CHECK_DENY" "$d")" "$BASE/v1/check"
done

RSS="$(awk '/^VmRSS:/ {print $2, $3}' "/proc/$AGENT_PID/status" 2>/dev/null || echo '?')"
HWM="$(awk '/^VmHWM:/ {print $2, $3}' "/proc/$AGENT_PID/status" 2>/dev/null || echo '?')"
echo
echo "== summary: vakt-agent --http-threads $AGENT_THREADS, wrk -t $WRK_THREADS, $(nproc) cores, $DURATION per run"
if (( ! HAS_R )); then
  echo "   (this wrk has no -R: fixed-rate runs pace each of $RATE_CONNECTIONS connections with a ${DELAY_MS} ms delay per request;"
  echo "    wrk's millisecond timers fire them in bursts, so their percentiles include queueing: c=1 is the per-request latency)"
fi
echo "   Non-2xx counts the deny paths' 401s (expected there; /v1/check answers 200 with the deny inside)"
printf '%-44s %-10s %12s %10s %10s %10s\n' "run" "mode" "requests/s" "p50" "p99" "non-2xx"
cat "$SUMMARY"
echo "agent memory: VmRSS $RSS, peak VmHWM $HWM"
