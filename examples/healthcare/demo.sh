#!/usr/bin/env bash
# The healthcare demo: checks, tests and compiles the patient-records policy,
# then decides a scripted story of requests with `vakt eval`, printing each
# request and its answer. Exits non-zero if any answer differs from the
# expected one, so the demo is also a test (tests/CMakeLists runs it).
#
# usage: demo.sh PATH/TO/vakt
set -euo pipefail
VAKT="${1:?usage: demo.sh PATH/TO/vakt}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

if [[ -t 1 ]]; then
  BOLD=$'\e[1m'; GREEN=$'\e[32m'; RED=$'\e[31m'; DIM=$'\e[2m'; RESET=$'\e[0m'
else
  BOLD=""; GREEN=""; RED=""; DIM=""; RESET=""
fi
failures=0
step() { printf '\n%s== %s%s\n' "$BOLD" "$1" "$RESET"; }

step "vakt check: the policy compiles cleanly"
"$VAKT" check "$HERE/policy"

step "vakt test: the policy's own tests"
"$VAKT" test "$HERE/policy"

step "vakt build: a verified bytecode bundle"
"$VAKT" build "$HERE/policy" -o "$WORK/healthcare.vkb"

# ask TITLE EXPECTED REQUEST.json [CLAIMS.json] [RESPONSE.json]
ask() {
  local title="$1" expected="$2" req="$3" claims="${4:-}" resp="${5:-}"
  local args=(eval "$WORK/healthcare.vkb" --request "$HERE/requests/$req")
  [[ -n "$claims" ]] && args+=(--claims "$HERE/requests/$claims")
  [[ -n "$resp" ]] && args+=(--response "$HERE/requests/$resp")
  local out got
  out="$("$VAKT" "${args[@]}")"
  got="$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["decision"] if d["decision"]=="allow" else "deny %d %s" % (d["status"], d["error"]))' <<<"$out" | sed 's/ $//')"
  printf '%s%s%s\n  %s%s%s\n' "$BOLD" "$title" "$RESET" "$DIM" "$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["method"], r["path"])' "$HERE/requests/$req")" "$RESET"
  if [[ "$got" == "$expected" ]]; then
    printf '  %s-> %s%s   %s\n' "$GREEN" "$got" "$RESET" "$out"
  else
    printf '  %s-> %s (expected %s)%s   %s\n' "$RED" "$got" "$expected" "$RESET" "$out"
    failures=$((failures + 1))
  fi
}

step "vakt eval: the story"
ask "Anna reads her own record" "allow" anna-get-record.json anna.claims.json record.response.json
ask "Eva tries Anna's record (BOLA)" "deny 403 access_denied" anna-get-record.json eva.claims.json
ask "Lis, a clinician outside Anna's care team, is refused" "deny 403 access_denied" anna-get-record.json lis.claims.json
ask "Bob, Anna's clinician, reads it" "allow" anna-get-record.json bob.claims.json
ask "No access token" "deny 401" anna-get-record-no-token.json
ask "Token in the query string" "deny 400 invalid_request" anna-get-record-query-token.json anna.claims.json
ask "TLS 1.1 is refused" "deny 403 insecure_transport" health-tls11.json
ask "A record id of the wrong shape" "deny 404 not_found" bad-record-id.json anna.claims.json
ask "The backend answers with HTML: withheld" "deny 502 invalid_response" anna-get-record.json anna.claims.json html.response.json
ask "The backend's record lacks its author (fails Record): withheld" "deny 502 invalid_response" anna-get-record.json anna.claims.json bad-record.response.json
ask "Bob adds a record to Anna's file (NewRecord)" "allow" bob-add-record.json bob.claims.json
ask "Bob's client also sends \`author\` (mass assignment; NewRecord is strict)" "deny 400 invalid_request" bob-add-record-author.json bob.claims.json
ask "A form-encoded body is not JSON" "deny 415 invalid_request" bob-add-record-form.json bob.claims.json

if ((failures)); then
  printf '\n%s%d answer(s) differ from the expected ones%s\n' "$RED" "$failures" "$RESET"
  exit 1
fi
printf '\n%sall answers as expected%s\n' "$GREEN" "$RESET"
