#!/usr/bin/env bash
# Makes fresh TEST keys for the healthcare example with `vakt token` and
# rewrites issuer.jwks.json, the issuer's public keys that the policy trusts.
# Private keys go to private/ (git-ignored, mode 0600); they exist so that
# tests and the demo can mint real tokens, and must never protect real data.
#
#   issuer-es256 / issuer-ps256 / issuer-eddsa (.pem and .jwk)
#       the issuer's signing keys, kids healthcare-es256, healthcare-ps256
#       and healthcare-eddsa; their public halves make issuer.jwks.json
#   dpop-client (.pem, .jwk, .jkt)  a client's DPoP key and its thumbprint
#   client-cert.pem, client-key.pem, client-cert.x5t
#       a self-signed mTLS client certificate and its x5t#S256
#
# Everything is made in a scratch folder first and moved into place only when
# all of it succeeded, so a failed run leaves the old keys and JWKS intact.
# Rerunning replaces every key (tokens minted before stop verifying).
#
# usage: generate.sh [PATH/TO/vakt]   (default: build/compiler/vakt)
# VAKT_KEYS_DIR overrides the output folder (the tests use a scratch one).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
VAKT="${1:-$ROOT/build/compiler/vakt}"
OUT="${VAKT_KEYS_DIR:-$HERE}"

if [[ ! -x "$VAKT" ]]; then
  echo "generate.sh: no vakt binary at \`$VAKT\`; build first or pass its path" >&2
  exit 2
fi

umask 077
mkdir -p "$OUT/private"
STAGE="$(mktemp -d "$OUT/.generate.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT

for alg in ES256 PS256 EdDSA; do
  name="$(tr '[:upper:]' '[:lower:]' <<<"$alg")"
  "$VAKT" token keygen --alg "$alg" --kid "healthcare-$name" \
    --out "$STAGE/issuer-$name.pem" --jwk-out "$STAGE/issuer-$name.jwk" >/dev/null
done
"$VAKT" token jwks "$STAGE/issuer-es256.jwk" "$STAGE/issuer-ps256.jwk" \
  "$STAGE/issuer-eddsa.jwk" >"$STAGE/issuer.jwks.json"

"$VAKT" token keygen --alg ES256 --kid healthcare-dpop-client \
  --out "$STAGE/dpop-client.pem" --jwk-out "$STAGE/dpop-client.jwk" >/dev/null
"$VAKT" token thumbprint "$STAGE/dpop-client.pem" >"$STAGE/dpop-client.jkt"
"$VAKT" token cert --cn healthcare-demo-client --out "$STAGE/client-cert.pem" \
  --key-out "$STAGE/client-key.pem" >"$STAGE/client-cert.x5t"

# All made: move into place, the public JWKS last.
for f in "$STAGE"/*; do
  [[ "$(basename "$f")" == issuer.jwks.json ]] && continue
  mv -f "$f" "$OUT/private/"
done
chmod 644 "$STAGE/issuer.jwks.json"
mv -f "$STAGE/issuer.jwks.json" "$OUT/issuer.jwks.json"

echo "wrote $OUT/issuer.jwks.json (public keys: healthcare-es256, healthcare-ps256, healthcare-eddsa)"
echo "wrote private keys, a DPoP client key and a client certificate to $OUT/private/"
