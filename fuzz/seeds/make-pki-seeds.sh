#!/usr/bin/env bash
# Makes the OCSP and CMS seeds of the fuzz targets with the openssl CLI (an implementation
# other than segl's), under a throwaway P-256 CA whose keys are discarded:
#
#     bash fuzz/seeds/make-pki-seeds.sh
#
# Output differs from run to run (keys, nonces, times); the targets depend on none of it,
# except that the CMS content is fixed: its SHA-256 is CMS_CONTENT_SHA256 in
# fuzz_targets/cms.rs, so the seeds get past the digest check to the signature.
set -euo pipefail

seeds="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

cat >openssl.cnf <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ocsp]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = OCSPSigning
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF

for name in ca ocsp leaf1 leaf2; do
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$name.key" 2>/dev/null
done
openssl req -x509 -new -config openssl.cnf -extensions ca -key ca.key \
    -subj /O=segl-fuzz/CN=fuzz-ca -days 3650 -set_serial 1 -out ca.pem
issue() { # name serial extensions
    openssl req -new -config openssl.cnf -key "$1.key" -subj "/O=segl-fuzz/CN=fuzz-$1" -out "$1.csr"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -set_serial "$2" -days 3650 \
        -sha256 -extfile openssl.cnf -extensions "$3" -out "$1.pem" 2>/dev/null
}
issue ocsp 0x0100 ocsp
issue leaf1 0x1001 leaf
issue leaf2 0x1002 leaf

# --- OCSP requests (segl_pki::ocsp::parse_request) ---
out="$seeds/ocsp_request"
openssl ocsp -issuer ca.pem -cert leaf1.pem -reqout "$out/one-cert-nonce.der"
openssl ocsp -issuer ca.pem -cert leaf1.pem -no_nonce -reqout "$out/one-cert-no-nonce.der"
openssl ocsp -issuer ca.pem -cert leaf1.pem -issuer ca.pem -cert leaf2.pem \
    -reqout "$out/two-certs.der"
openssl ocsp -sha256 -issuer ca.pem -cert leaf1.pem -reqout "$out/sha256-cert-id.der"
openssl ocsp -issuer ca.pem -cert leaf1.pem -signer leaf1.pem -signkey leaf1.key \
    -reqout "$out/signed.der"

# --- OCSP responses (segl_pki::verify::parse_ocsp_response) ---
out="$seeds/ocsp_response"
expiry="$(date -u -d '+10 years' +%y%m%d%H%M%SZ)"
revoked="$(date -u -d '-1 day' +%y%m%d%H%M%SZ)"
printf 'V\t%s\t\t1001\tunknown\t/O=segl-fuzz/CN=fuzz-leaf1\n' "$expiry" >index.txt
printf 'R\t%s\t%s,keyCompromise\t1002\tunknown\t/O=segl-fuzz/CN=fuzz-leaf2\n' \
    "$expiry" "$revoked" >>index.txt
respond() { # request response
    openssl ocsp -index index.txt -rsigner ocsp.pem -rkey ocsp.key -CA ca.pem -ndays 1 \
        -reqin "$1" -respout "$2" 2>/dev/null
}
respond "$seeds/ocsp_request/one-cert-nonce.der" "$out/good-nonce.der"
respond "$seeds/ocsp_request/two-certs.der" "$out/good-and-revoked.der"
openssl ocsp -index index.txt -rsigner ocsp.pem -rkey ocsp.key -CA ca.pem -ndays 1 \
    -resp_key_id -resp_no_certs -reqin "$seeds/ocsp_request/one-cert-no-nonce.der" \
    -respout "$out/by-key-no-certs.der" 2>/dev/null
printf '\x30\x03\x0a\x01\x06' >"$out/unauthorized.der" # OCSPResponse{unauthorized}

# --- detached CMS (segl_pki::cms::verify_detached) ---
out="$seeds/cms"
printf 'segl fuzz content\n' >content.bin
sign() { # output extra-args
    # shellcheck disable=SC2086 # $2 is a list of arguments
    openssl cms -sign -binary -in content.bin -signer leaf1.pem -inkey leaf1.key \
        -certfile ca.pem -md sha256 -outform DER -out "$out/$1" $2
}
sign cades.der -cades
sign plain.der ""

ls -l "$seeds"/ocsp_request "$seeds"/ocsp_response "$seeds"/cms
