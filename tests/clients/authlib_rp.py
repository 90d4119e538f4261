#!/usr/bin/env python3
"""A third-party relying party (Python Authlib + requests) logging in at segl.

Run by crates/cli/tests/third_party_clients.rs against a fresh `segl serve`. It does what
an integrator's application would: discovery, an authorization request with PKCE (S256),
state and nonce, the person's login (driven over segl's flow API with a cookie-keeping
requests.Session, as the browser), the code exchange with Authlib's OAuth2Session
(client_secret_basic), ID token verification against the JWKS and its claims with
Authlib's CodeIDToken (iss, aud, nonce, exp, iat, at_hash), and userinfo.

Authlib 1.7+ deprecates `authlib.jose` in favour of `joserfc` (same author); this script
verifies the signature with joserfc and the claims with authlib.oidc.core.CodeIDToken,
exactly as Authlib's own OpenID client does in this version.

Environment: SEGL_ISSUER, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, NIN, PASSWORD,
HOTP_SECRET_HEX, HOTP_COUNTER (the code device's next counter), and optionally
EXPECTED_SUB and EXPECTED_NAME.

Prints "authlib: OK" and exits 0, or prints "authlib: FAIL: <reason>" and exits 1.
"""

import hashlib
import hmac
import os
import struct
import sys
from urllib.parse import parse_qs, urljoin, urlparse

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

ACR_HIGH = "http://eidas.europa.eu/LoA/high"
TIMEOUT = 30


class Failure(Exception):
    """A check that failed; the message says which."""


def check(cond, message):
    if not cond:
        raise Failure(message)


def env(name):
    value = os.environ.get(name)
    if not value:
        raise Failure(f"environment variable {name} is not set")
    return value


def hotp(secret: bytes, counter: int, digits: int = 6) -> str:
    """RFC 4226 HOTP with HMAC-SHA1, written here independently of segl."""
    mac = hmac.new(secret, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    number = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(number % 10**digits).zfill(digits)


def drive_login(authorize_url, issuer, nin, code, password):
    """Plays the browser: follows the authorize URL to the login flow and answers each
    step over the flow API. Returns the redirect back to the client."""
    browser = requests.Session()
    r = browser.get(authorize_url, allow_redirects=False, timeout=TIMEOUT)
    check(r.status_code in (302, 303), f"authorize answered {r.status_code}, not a redirect: {r.text[:300]}")
    location = urljoin(authorize_url, r.headers["Location"])
    parsed = urlparse(location)
    check(parsed.path == "/login", f"authorize redirected to {location}, not /login")
    flow_id = parse_qs(parsed.query)["flow"][0]
    check("segl_flow" in browser.cookies, "authorize did not set the segl_flow cookie")

    api = f"{issuer}/api/v1/flows/{flow_id}"
    r = browser.get(api, timeout=TIMEOUT)
    check(r.status_code == 200, f"GET flow: {r.status_code} {r.text[:300]}")
    view = r.json()
    check(view["state"] == "identify", f"a new flow starts at identify: {view}")

    def step(name, body):
        r = browser.post(f"{api}/{name}", json=body, headers={"X-CSRF-Token": view["csrf_token"]}, timeout=TIMEOUT)
        check(r.status_code == 200, f"flow step {name}: {r.status_code} {r.text[:300]}")
        return r.json()

    view = step("identify", {"nin": nin})
    if view["state"] == "choose_method":
        check("otp" in view["methods"], f"code device not offered: {view}")
        view = step("method", {"method": "otp"})
    check(view["state"] == "otp", f"expected the code step: {view}")
    view = step("otp", {"otp": code})
    check(view["state"] == "password", f"expected the password step: {view}")
    view = step("password", {"password": password})
    check(view["state"] == "done", f"expected done: {view}")
    return view["redirect_to"]


def main():
    issuer = env("SEGL_ISSUER").rstrip("/")
    client_id = env("CLIENT_ID")
    client_secret = env("CLIENT_SECRET")
    redirect_uri = env("REDIRECT_URI")
    nin = env("NIN")
    password = env("PASSWORD")
    secret = bytes.fromhex(env("HOTP_SECRET_HEX"))
    counter = int(env("HOTP_COUNTER"))
    check(hotp(b"12345678901234567890", 0) == "755224", "own HOTP fails RFC 4226's vector")

    # Discovery.
    r = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=TIMEOUT)
    check(r.status_code == 200, f"discovery: {r.status_code}")
    meta = r.json()
    check(meta["issuer"] == issuer, f"discovery issuer {meta['issuer']!r} != {issuer!r}")
    check("S256" in meta.get("code_challenge_methods_supported", []), "no PKCE S256 in discovery")

    # Authorization request with PKCE, state and nonce.
    client = OAuth2Session(
        client_id,
        client_secret,
        scope="openid profile",
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    code_verifier = generate_token(64)
    nonce = generate_token(24)
    authorize_url, state = client.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=code_verifier, nonce=nonce
    )

    redirect_to = drive_login(authorize_url, issuer, nin, hotp(secret, counter), password)
    query = parse_qs(urlparse(redirect_to).query)
    check(redirect_to.startswith(redirect_uri + "?"), f"redirect goes elsewhere: {redirect_to}")
    check("error" not in query, f"error redirect: {redirect_to}")
    check(query.get("state") == [state], f"state not returned: {redirect_to}")
    check(query.get("iss") == [issuer], f"iss (RFC 9207) is not the issuer: {redirect_to}")

    # Code exchange (client_secret_basic, code_verifier).
    token = client.fetch_token(
        meta["token_endpoint"],
        authorization_response=redirect_to,
        state=state,
        code_verifier=code_verifier,
    )
    check("id_token" in token and "access_token" in token, f"token response lacks tokens: {sorted(token)}")

    # ID token: signature against the JWKS, then the claims.
    r = requests.get(meta["jwks_uri"], timeout=TIMEOUT)
    check(r.status_code == 200, f"jwks: {r.status_code}")
    keys = KeySet.import_key_set(r.json())
    algs = meta["id_token_signing_alg_values_supported"]
    decoded = jwt.decode(token["id_token"], keys, registry=JWSRegistry(algorithms=algs))
    check(decoded.header.get("alg") in algs, f"unexpected alg {decoded.header.get('alg')}")
    claims = CodeIDToken(
        decoded.claims,
        decoded.header,
        {
            "iss": {"essential": True, "values": [issuer]},
            "aud": {"essential": True, "values": [client_id]},
            "nonce": {"essential": True, "value": nonce},
        },
        {"nonce": nonce, "client_id": client_id, "access_token": token["access_token"]},
    )
    claims.validate(leeway=60)
    check(sorted(claims.get("amr", [])) == ["mfa", "otp", "pwd"], f"amr: {claims.get('amr')}")
    check(claims.get("acr") == ACR_HIGH, f"acr: {claims.get('acr')}")
    check(claims["sub"] != nin, "sub is the national identity number")
    check("nin" not in claims, "nin claim without the nin scope")
    expected_sub = os.environ.get("EXPECTED_SUB")
    if expected_sub:
        check(claims["sub"] == expected_sub, f"sub {claims['sub']} != {expected_sub}")
    expected_name = os.environ.get("EXPECTED_NAME")
    if expected_name:
        check(claims.get("name") == expected_name, f"name: {claims.get('name')!r}")

    # Userinfo with the access token.
    r = client.get(meta["userinfo_endpoint"], timeout=TIMEOUT)
    check(r.status_code == 200, f"userinfo: {r.status_code} {r.text[:300]}")
    info = r.json()
    check(info.get("sub") == claims["sub"], f"userinfo sub {info.get('sub')} != {claims['sub']}")
    if expected_name:
        check(info.get("name") == expected_name, f"userinfo name: {info.get('name')!r}")

    print("authlib: OK")


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print(f"authlib: FAIL: {e}")
        sys.exit(1)
