#!/usr/bin/env bash
# The README's demo command: installs what is missing, builds, then runs the
# whole system on loopback (scripts/e2e_demo.sh): the control plane with its
# SQLite store, two agents, nginx with TLS and client certificates in front
# of the patient-records service, and the scripted healthcare story with
# real tokens and DPoP proofs, a staged rollout and a rollback. Exits
# non-zero if any answer differs from the expected one.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
bash "$ROOT/scripts/build.sh"
exec bash "$ROOT/scripts/e2e_demo.sh" "${BUILD_DIR:-$ROOT/build}"
