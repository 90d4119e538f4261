//! OpenID Connect vocabulary that the flows carry: the validated authorization request,
//! levels of assurance and authentication methods (RFC 8176).

use serde::{Deserialize, Serialize};

/// eIDAS level "high": code device + password, app + password, smart card + PIN.
pub const ACR_HIGH: &str = "http://eidas.europa.eu/LoA/high";
/// eIDAS level "substantial": app unlocked by PIN or biometrics, passkey.
pub const ACR_SUBSTANTIAL: &str = "http://eidas.europa.eu/LoA/substantial";
/// The levels segl can assert, strongest first.
pub const SUPPORTED_ACRS: [&str; 2] = [ACR_HIGH, ACR_SUBSTANTIAL];

/// Rank of a level, so "at least substantial" is met by "high".
pub fn acr_rank(acr: &str) -> Option<u8> {
    match acr {
        ACR_HIGH => Some(2),
        ACR_SUBSTANTIAL => Some(1),
        _ => None,
    }
}

/// `prompt` values of OIDC Core 3.1.2.1 that segl acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prompt {
    /// Never show a page; fail with `login_required` when there is no session.
    None,
    /// Authenticate again even with a session.
    Login,
    /// Accepted and treated as a normal login: segl has no consent screen.
    Consent,
    /// Accepted and treated as a normal login: one account per browser.
    SelectAccount,
}

impl Prompt {
    /// Parses one space-separated `prompt` value; unknown values are `None` here and
    /// refused by the caller.
    pub fn parse(s: &str) -> Option<Prompt> {
        match s {
            "none" => Some(Prompt::None),
            "login" => Some(Prompt::Login),
            "consent" => Some(Prompt::Consent),
            "select_account" => Some(Prompt::SelectAccount),
            _ => None,
        }
    }
}

/// An authorization request that passed validation against the client registry. It rides
/// along in the login flow and ends up in the authorization code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRequest {
    /// The client that asked.
    pub client_id: String,
    /// The client's display name, shown on the pages.
    pub client_name: String,
    /// Exactly one of the client's registered redirect URIs.
    pub redirect_uri: String,
    /// Requested scopes, deduplicated, `openid` among them.
    pub scopes: Vec<String>,
    /// Echoed back to the client.
    pub state: Option<String>,
    /// Put into the ID token.
    pub nonce: Option<String>,
    /// PKCE S256 challenge, if any.
    pub code_challenge: Option<String>,
    /// `prompt` values.
    pub prompt: Vec<Prompt>,
    /// Maximum age of the authentication, seconds.
    pub max_age: Option<i64>,
    /// The level the client asked for (the weakest acceptable; segl meets it or fails).
    pub acr: String,
    /// National identity number from `login_hint`, already validated.
    pub login_hint: Option<String>,
    /// Language tags from `ui_locales`, in order of preference.
    pub ui_locales: Vec<String>,
    /// Claims asked for through the `claims` parameter for the ID token.
    pub id_token_claims: Vec<String>,
    /// Claims asked for through the `claims` parameter for userinfo.
    pub userinfo_claims: Vec<String>,
}

impl AuthRequest {
    /// The request of a flow that segl starts itself rather than a relying party's
    /// authorization (activating the app, signing an order): no scopes, nonce, PKCE or
    /// prompt; `acr` is the level the flow must reach.
    pub fn internal(
        client_id: String,
        client_name: String,
        redirect_uri: String,
        acr: &str,
        login_hint: Option<String>,
        ui_locales: Vec<String>,
    ) -> AuthRequest {
        AuthRequest {
            client_id,
            client_name,
            redirect_uri,
            scopes: Vec::new(),
            state: None,
            nonce: None,
            code_challenge: None,
            prompt: Vec::new(),
            max_age: None,
            acr: acr.into(),
            login_hint,
            ui_locales,
            id_token_claims: Vec::new(),
            userinfo_claims: Vec::new(),
        }
    }

    /// Whether a scope was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// Whether an existing authentication at `auth_time` satisfies `max_age` at `now`.
/// `max_age=0` means `prompt=login` (OIDC Core 3.1.2.1): never satisfied by a session,
/// even one from this very second (times are whole seconds).
pub fn within_max_age(auth_time: i64, max_age: Option<i64>, now: i64) -> bool {
    match max_age {
        None => true,
        Some(0) => false,
        Some(age) => now - auth_time <= age,
    }
}

/// The `amr` values (RFC 8176) of a code-device and password login.
pub fn amr_otp_password() -> Vec<String> {
    vec!["otp".into(), "pwd".into(), "mfa".into()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_counts_seconds() {
        assert!(within_max_age(100, Some(10), 110));
        assert!(!within_max_age(100, Some(10), 111));
        assert!(within_max_age(100, None, 1_000_000));
        assert!(!within_max_age(100, Some(0), 101));
        assert!(!within_max_age(100, Some(0), 100));
    }

    #[test]
    fn ranks_order_levels() {
        assert!(acr_rank(ACR_HIGH) > acr_rank(ACR_SUBSTANTIAL));
        assert_eq!(acr_rank("urn:other"), None);
    }
}

/// What a person authorized a client to have: created when a login finishes, carried by
/// the authorization code and every token issued from it (stored as JSON, field `v`
/// versions the record).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Record version.
    pub v: u32,
    /// Groups the code and every token issued from it, for revocation on reuse.
    pub grant_id: String,
    /// The client.
    pub client_id: String,
    /// The person (internal id).
    pub person_id: String,
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// Nonce for the ID token.
    pub nonce: Option<String>,
    /// When the person authenticated.
    pub auth_time: i64,
    /// Level reached.
    pub acr: String,
    /// Methods used (RFC 8176).
    pub amr: Vec<String>,
    /// Redirect URI the code was sent to (must match at the token endpoint).
    pub redirect_uri: String,
    /// PKCE challenge (S256).
    pub code_challenge: Option<String>,
    /// Claims requested for the ID token through `claims`.
    pub id_token_claims: Vec<String>,
    /// Claims requested for userinfo through `claims`.
    pub userinfo_claims: Vec<String>,
}

impl Grant {
    /// Whether a scope was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}
