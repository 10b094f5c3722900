#!/usr/bin/env bash
# The README's demo command: installs what is missing, builds, then checks,
# tests, builds and evaluates the healthcare example policy end to end.
# Exits non-zero if any answer differs from the expected one.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
bash "$ROOT/scripts/build.sh"
VAKT="${BUILD_DIR:-$ROOT/build}/compiler/vakt"
exec bash "$ROOT/examples/healthcare/demo.sh" "$VAKT"
