#!/usr/bin/env bash
# Makes the seeds of the `jwt` target (fuzz_targets/jwt.rs) with the openssl CLI:
#
#     bash fuzz/seeds/make-jwt-seeds.sh
#
# `*.signing-input` files are `header.payload`, which the target signs itself with its
# Ed25519 key (seed 32 bytes of 0x07) before verifying; `*.jwt` files are whole tokens
# signed here with the same key, so they verify as they are. Claims fit the target's
# client id `client-1`, audience and now (1800000000). Deterministic (Ed25519).
set -euo pipefail

out="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/jwt"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# PKCS#8 of the Ed25519 seed 0x07 * 32 (RFC 8410 prefix + seed).
{ printf '302e020100300506032b657004220420'; printf '07%.0s' $(seq 32); } | xxd -r -p >"$tmp/ed.der"
b64url() { basenc --base64url -w0 | tr -d '='; }
part() { printf '%s' "$1" | b64url; }

# name header claims
seed() {
    local input
    input="$(part "$2").$(part "$3")"
    printf '%s' "$input" >"$out/$1.signing-input"
    printf '%s' "$input" >"$tmp/msg"
    printf '%s.%s' "$input" "$(openssl pkeyutl -sign -rawin -keyform DER -inkey "$tmp/ed.der" \
        -in "$tmp/msg" | b64url)" >"$out/$1.jwt"
}
seed good '{"alg":"EdDSA","kid":"ed","typ":"JWT"}' \
    '{"iss":"client-1","sub":"client-1","aud":"https://eid.example.no/token","exp":1800000120,"iat":1800000000,"jti":"j-1"}'
seed aud-array-float-times '{"alg":"EdDSA"}' \
    '{"iss":"client-1","sub":"client-1","aud":["x","https://eid.example.no"],"exp":1800000060.5,"nbf":1799999999.9,"iat":1800000000,"jti":"j-2"}'
seed no-jti-wrong-sub '{"alg":"EdDSA","kid":"ed"}' \
    '{"iss":"client-1","sub":"client-2","aud":"https://eid.example.no","exp":1800000120}'
# Another key's algorithm: the signature check picks the P-256 key and fails.
printf '%s.%s.%s' "$(part '{"alg":"ES256","kid":"ec"}')" \
    "$(part '{"iss":"client-1","sub":"client-1","aud":"https://eid.example.no","exp":1800000120,"jti":"j-3"}')" \
    "$(printf 'x%.0s' $(seq 64) | b64url)" >"$out/es256-bad-signature.jwt"
ls -l "$out"
