#!/usr/bin/env bash
# Makes the demo PKI of the end-to-end demo (scripts/e2e_demo.sh) with the
# openssl CLI, ECDSA P-256, the way docs/operations.md shows it:
#
#   ca.pem, ca.key          a demo CA (CA:TRUE), the root nginx verifies client
#                           certificates with and the client trusts
#   server.pem, server.key  nginx's certificate, subjectAltName IP:127.0.0.1 and
#                           DNS:localhost, signed by the CA
#   client.pem, client.key  a client certificate (CN healthcare-demo-client,
#                           clientAuth) signed by the CA, for certificate-bound
#                           (RFC 8705) access tokens
#
# TEST KEYS for a loopback demo; never use them for anything else.
#
# usage: make_certs.sh OUT_DIR
set -euo pipefail
OUT="${1:?usage: make_certs.sh OUT_DIR}"
mkdir -p "$OUT"
cd "$OUT"
umask 077

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
serial() { echo "0x$(openssl rand -hex 8)"; }

key ca.key
openssl req -new -key ca.key -subj "/CN=vakt-demo-ca" -out ca.csr
printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n' >ca.ext
openssl x509 -req -in ca.csr -signkey ca.key -days 30 -extfile ca.ext -out ca.pem 2>/dev/null

key server.key
openssl req -new -key server.key -subj "/CN=localhost" -out server.csr
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n' >server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial "$(serial)" \
  -days 30 -extfile server.ext -out server.pem 2>/dev/null

key client.key
openssl req -new -key client.key -subj "/CN=healthcare-demo-client" -out client.csr
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >client.ext
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -set_serial "$(serial)" \
  -days 30 -extfile client.ext -out client.pem 2>/dev/null

rm -f ./*.csr ./*.ext ca.srl
chmod 644 ca.pem server.pem client.pem
