#!/usr/bin/env bash
# Idempotent set-up for a Debian 12 machine: installs the build tools and the
# libraries Vakt needs from Debian's packages, and nothing else. Safe to run
# again: packages already present are skipped, apt is only called when
# something is missing.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  default-jre-headless antlr4 libantlr4-runtime-dev
  libre2-dev libsimdjson-dev nlohmann-json3-dev libcli11-dev
  libssl-dev openssl libsqlite3-dev sqlite3 libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libboost-dev python3 curl nginx-light wrk
  libyaml-cpp-dev libvalijson-dev diffutils patch
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present"
fi
