//! The OpenID Connect code flow end to end, with the `openidconnect` crate as the relying
//! party and the flow API as the browser, against the real `segl` binary on each backend.

#[macro_use]
mod common;

use common::*;
use openidconnect::core::{CoreJwsSigningAlgorithm, CoreUserInfoClaims};
use openidconnect::{
    AccessToken, AccessTokenHash, Nonce, OAuth2TokenResponse, RefreshToken, TokenResponse,
};
use serde_json::{Value, json};

/// The level of code device + password.
const ACR_HIGH: &str = "http://eidas.europa.eu/LoA/high";

/// `amr` as a sorted list (RFC 8176 gives no order).
fn amr_of(claims: &Value) -> Vec<String> {
    let mut amr: Vec<String> = claims["amr"]
        .as_array()
        .unwrap_or_else(|| panic!("no amr array in {claims}"))
        .iter()
        .map(|v| v.as_str().expect("amr values are strings").to_string())
        .collect();
    amr.sort();
    amr
}

fn assert_high_mfa(claims: &Value) {
    assert_eq!(
        amr_of(claims),
        vec!["mfa", "otp", "pwd"],
        "amr must be [otp, pwd, mfa]: {claims}"
    );
    assert_eq!(claims["acr"], ACR_HIGH, "acr: {claims}");
}

backend_tests!(
    code_flow_with_pkce_and_nonce,
    rs256_client_gets_a_verifiable_rs256_token,
    refresh_tokens_rotate_and_reuse_revokes_the_family,
    nin_scope_controls_the_nin_claim,
);

/// The whole code flow: discovery, authorize (PKCE S256, nonce, state), the login over the
/// flow API, the redirect (state, iss), the exchange, ID token verification, userinfo.
async fn code_flow_with_pkce_and_nonce(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let issuer = fx.server.issuer();
    let (meta, client) = discover(&fx.server, &fx.rp).await;
    assert_eq!(meta.issuer().as_str(), issuer, "discovery issuer");

    // The discovery document promises what the contract says.
    let mut b = fx.browser();
    let doc = b.get("/.well-known/openid-configuration").await;
    doc.expect_status(200);
    let doc = doc.json();
    for (field, path) in [
        ("authorization_endpoint", "/oauth2/authorize"),
        ("token_endpoint", "/oauth2/token"),
        ("userinfo_endpoint", "/oauth2/userinfo"),
        ("jwks_uri", "/oauth2/jwks"),
    ] {
        assert_eq!(
            doc[field],
            format!("{issuer}{path}"),
            "discovery {field}: {doc}"
        );
    }
    assert!(
        doc["code_challenge_methods_supported"]
            .as_array()
            .is_some_and(|m| m.contains(&json!("S256"))),
        "discovery must offer PKCE S256: {doc}"
    );

    let start = authorize(&client, &["profile"], &[]);
    let redirect_to = b
        .login(start.url.as_str(), NIN, &mut fx.device, PASSWORD)
        .await;
    let code = code_from(&redirect_to, &fx.rp, &start, &issuer);

    let tokens = exchange(&client, code, start.verifier).await;
    assert!(
        tokens.refresh_token().is_none(),
        "no refresh token without the offline_access scope"
    );
    let id_token = tokens.id_token().expect("an ID token for scope openid");
    let verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&verifier, &start.nonce)
        .unwrap_or_else(|e| panic!("ID token does not verify: {e:?}"));
    assert_eq!(claims.issuer().as_str(), issuer);
    assert_eq!(
        claims.subject().as_str(),
        fx.sub,
        "sub is the person's sub from `person add`"
    );
    assert_ne!(
        claims.subject().as_str(),
        NIN,
        "sub must never be the national identity number"
    );
    let name = claims
        .name()
        .and_then(|n| n.get(None))
        .map(|n| n.as_str().to_string());
    assert_eq!(name.as_deref(), Some(NAME), "name with scope profile");

    // at_hash binds the access token to the ID token (OIDC Core 3.1.3.6).
    if let Some(at_hash) = claims.access_token_hash() {
        let alg = id_token.signing_alg().expect("signing alg");
        let key = id_token
            .signing_key(&verifier)
            .expect("signing key in JWKS");
        let expected = AccessTokenHash::from_token(tokens.access_token(), alg, key).expect("hash");
        assert_eq!(
            at_hash, &expected,
            "at_hash does not match the access token"
        );
    }

    let raw = id_token_claims(id_token);
    assert_high_mfa(&raw);
    assert!(
        raw.get("nin").is_none(),
        "no nin claim without the nin scope: {raw}"
    );

    // Userinfo, through the library (checks sub) and raw.
    let http = oidc_http();
    let info: CoreUserInfoClaims = client
        .user_info(
            tokens.access_token().clone(),
            Some(claims.subject().clone()),
        )
        .expect("userinfo endpoint in discovery")
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("userinfo failed: {e:?}"));
    assert_eq!(
        info.name().and_then(|n| n.get(None)).map(|n| n.as_str()),
        Some(NAME)
    );
    let raw_info = userinfo_raw(&fx.server, tokens.access_token().secret()).await;
    raw_info.expect_status(200);
    let raw_info = raw_info.json();
    assert_eq!(raw_info["sub"], fx.sub.as_str());
    assert!(
        raw_info.get("nin").is_none(),
        "no nin in userinfo without the nin scope: {raw_info}"
    );

    // The login is on record and the chain holds.
    assert!(
        fx.segl.audit_count("login.success") >= 1,
        "a login is audited"
    );
    fx.segl.audit_ok();
}

/// A client registered with `--id-token-alg RS256` gets RS256 ID tokens that verify
/// against the JWKS.
async fn rs256_client_gets_a_verifiable_rs256_token(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let issuer = fx.server.issuer();
    let rp = fx
        .segl
        .add_rp("RSA client", REDIRECT_URI, &["--id-token-alg", "RS256"]);
    let (_, client) = discover(&fx.server, &rp).await;
    let start = authorize(&client, &["profile"], &[]);
    let mut b = fx.browser();
    let redirect_to = b
        .login(start.url.as_str(), NIN, &mut fx.device, PASSWORD)
        .await;
    let code = code_from(&redirect_to, &rp, &start, &issuer);
    let tokens = exchange(&client, code, start.verifier).await;
    let id_token = tokens.id_token().expect("ID token");
    let (header, _) = jwt_parts(&id_token.to_string());
    assert_eq!(
        header["alg"], "RS256",
        "header of an RS256 client's token: {header}"
    );
    let verifier = client
        .id_token_verifier()
        .set_allowed_algs(vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]);
    let claims = id_token
        .claims(&verifier, &start.nonce)
        .unwrap_or_else(|e| panic!("RS256 ID token does not verify against the JWKS: {e:?}"));
    assert_eq!(claims.subject().as_str(), fx.sub);
    assert_high_mfa(&id_token_claims(id_token));

    // The default client still gets a token that verifies (whatever its algorithm).
    let (_, default_client) = discover(&fx.server, &fx.rp).await;
    let start = authorize(&default_client, &[], &[]);
    let mut b = fx.browser();
    let redirect_to = b
        .login(start.url.as_str(), NIN, &mut fx.device, PASSWORD)
        .await;
    let code = code_from(&redirect_to, &fx.rp, &start, &issuer);
    let tokens = exchange(&default_client, code, start.verifier).await;
    let id_token = tokens.id_token().expect("ID token");
    let verifier = default_client
        .id_token_verifier()
        .set_allowed_algs(segl_algs());
    id_token
        .claims(&verifier, &start.nonce)
        .unwrap_or_else(|e| panic!("default client's ID token does not verify: {e:?}"));
}

/// `offline_access` gives a refresh token; each use rotates it; using an old one again is
/// `invalid_grant` and revokes the whole family, so the newest stops working too.
async fn refresh_tokens_rotate_and_reuse_revokes_the_family(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let (client, tokens) = fx.login_tokens(&["profile", "offline_access"]).await;
    let rt1: RefreshToken = tokens
        .refresh_token()
        .expect("a refresh token with offline_access")
        .clone();

    let refreshed = refresh_grant(&client, &rt1)
        .await
        .unwrap_or_else(|e| panic!("refresh failed: {e}"));
    let rt2 = refreshed
        .refresh_token()
        .expect("rotation gives a new refresh token")
        .clone();
    assert_ne!(rt1.secret(), rt2.secret(), "the refresh token must rotate");
    let at2: AccessToken = refreshed.access_token().clone();
    assert_ne!(
        at2.secret(),
        tokens.access_token().secret(),
        "a new access token"
    );
    userinfo_raw(&fx.server, at2.secret())
        .await
        .expect_status(200);
    if let Some(id_token) = refreshed.id_token() {
        // A refreshed ID token carries no nonce (OIDC Core 12.2); it still verifies.
        let verifier = client.id_token_verifier();
        let claims = id_token
            .claims(&verifier, |_: Option<&Nonce>| Ok(()))
            .unwrap_or_else(|e| panic!("refreshed ID token does not verify: {e:?}"));
        assert_eq!(claims.subject().as_str(), fx.sub);
    }

    // Reusing the first refresh token: invalid_grant ...
    let reuse = refresh_grant(&client, &rt1)
        .await
        .expect_err("a used refresh token must be refused");
    assert_eq!(reuse, "invalid_grant");
    // ... and the family is revoked: the newest refresh token is dead too.
    let after = refresh_grant(&client, &rt2)
        .await
        .expect_err("the family must be revoked after a reuse");
    assert_eq!(after, "invalid_grant");
    fx.segl.audit_ok();
}

/// The `nin` scope adds the `nin` claim (ID token and userinfo); without it there is none.
async fn nin_scope_controls_the_nin_claim(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let issuer = fx.server.issuer();
    let (_, client) = discover(&fx.server, &fx.rp).await;

    let start = authorize(&client, &["nin"], &[]);
    let mut b = fx.browser();
    let redirect_to = b
        .login(start.url.as_str(), NIN, &mut fx.device, PASSWORD)
        .await;
    let code = code_from(&redirect_to, &fx.rp, &start, &issuer);
    let tokens = exchange(&client, code, start.verifier).await;
    let id_token = tokens.id_token().expect("ID token");
    id_token
        .claims(&client.id_token_verifier(), &start.nonce)
        .unwrap_or_else(|e| panic!("ID token does not verify: {e:?}"));
    let claims = id_token_claims(id_token);
    assert_eq!(claims["nin"], NIN, "nin claim with the nin scope: {claims}");
    assert_ne!(claims["sub"], NIN);
    let info = userinfo_raw(&fx.server, tokens.access_token().secret()).await;
    info.expect_status(200);
    assert_eq!(
        info.json()["nin"],
        NIN,
        "nin in userinfo with the nin scope"
    );

    // Without the scope (a new browser, so no single sign-on shortcut is needed).
    let start = authorize(&client, &["profile"], &[]);
    let mut b = fx.browser();
    let redirect_to = b
        .login(start.url.as_str(), NIN, &mut fx.device, PASSWORD)
        .await;
    let code = code_from(&redirect_to, &fx.rp, &start, &issuer);
    let tokens = exchange(&client, code, start.verifier).await;
    let id_token = tokens.id_token().expect("ID token");
    id_token
        .claims(&client.id_token_verifier(), &start.nonce)
        .unwrap_or_else(|e| panic!("ID token does not verify: {e:?}"));
    let claims = id_token_claims(id_token);
    assert!(
        claims.get("nin").is_none(),
        "no nin without the nin scope: {claims}"
    );
    let info = userinfo_raw(&fx.server, tokens.access_token().secret()).await;
    info.expect_status(200);
    assert!(
        info.json().get("nin").is_none(),
        "no nin in userinfo without the nin scope"
    );
}

/// The test's own HOTP against RFC 4226 appendix D.
#[test]
fn own_hotp_matches_rfc4226() {
    assert_eq!(hotp(OTP_SECRET, 0, 6), "755224");
    assert_eq!(hotp(OTP_SECRET, 1, 6), "287082");
    assert_eq!(hotp(OTP_SECRET, 9, 6), "520489");
    // RFC 6238 appendix B, SHA-1, 8 digits.
    assert_eq!(totp(OTP_SECRET, 59, 30, 8), "94287082");
    assert_eq!(totp(OTP_SECRET, 1_111_111_109, 30, 8), "07081804");
    let mut d = Hotp::new(SERIAL);
    assert_eq!(d.next_code(), "755224");
    assert_eq!(d.counter, 1);
    let wrong = d.wrong_code();
    assert!((0..1000).all(|c| hotp(OTP_SECRET, c, 6) != wrong));
}
