//! Registered relying parties (OIDC clients).

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::{Conn, Result, StoreError, map_unique};

/// How a client authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// HTTP Basic with the client secret.
    ClientSecretBasic,
    /// The secret in the form body.
    ClientSecretPost,
    /// A JWT signed with the client's key (RFC 7523).
    PrivateKeyJwt,
    /// Public client (PKCE required).
    None,
}

impl AuthMethod {
    /// The registration name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
            AuthMethod::None => "none",
        }
    }

    /// Parses a registration name.
    pub fn parse(s: &str) -> Option<AuthMethod> {
        Some(match s {
            "client_secret_basic" => AuthMethod::ClientSecretBasic,
            "client_secret_post" => AuthMethod::ClientSecretPost,
            "private_key_jwt" => AuthMethod::PrivateKeyJwt,
            "none" => AuthMethod::None,
            _ => return None,
        })
    }
}

/// A registered client.
#[derive(Clone, Debug, Serialize)]
pub struct Client {
    /// Client identifier.
    pub client_id: String,
    /// Display name shown to people.
    pub name: String,
    /// SHA-256 (base64url) of the client secret, for confidential secret clients.
    #[serde(skip)]
    pub secret_hash: Option<String>,
    /// Token endpoint authentication.
    pub auth_method: AuthMethod,
    /// Exact redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Exact post-logout redirect URIs.
    pub post_logout_redirect_uris: Vec<String>,
    /// JWKS for private_key_jwt.
    #[serde(skip)]
    pub jwks: Option<serde_json::Value>,
    /// ID token signing algorithm (`ES256` or `RS256`).
    pub id_token_alg: String,
}

impl Client {
    /// A public client (no secret, PKCE required).
    pub fn is_public(&self) -> bool {
        self.auth_method == AuthMethod::None
    }
}

/// Registers a client.
pub async fn insert(c: &mut Conn, cl: &Client, now: i64) -> Result<()> {
    let uris =
        serde_json::to_string(&cl.redirect_uris).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let logout = serde_json::to_string(&cl.post_logout_redirect_uris)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let jwks = cl.jwks.as_ref().map(|j| j.to_string());
    sqlx::query(
        "INSERT INTO clients (client_id, name, secret_hash, auth_method, redirect_uris, post_logout_redirect_uris, \
         jwks, id_token_alg, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&cl.client_id)
    .bind(&cl.name)
    .bind(&cl.secret_hash)
    .bind(cl.auth_method.as_str())
    .bind(uris)
    .bind(logout)
    .bind(jwks)
    .bind(&cl.id_token_alg)
    .bind(now)
    .execute(c)
    .await
    .map_err(|e| map_unique(e, format!("client {}", cl.client_id)))?;
    Ok(())
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<Client> {
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("client: {e}"));
    let method: String = r.try_get("auth_method")?;
    let jwks: Option<String> = r.try_get("jwks")?;
    Ok(Client {
        client_id: r.try_get("client_id")?,
        name: r.try_get("name")?,
        secret_hash: r.try_get("secret_hash")?,
        auth_method: AuthMethod::parse(&method)
            .ok_or_else(|| StoreError::Corrupt(format!("client auth method {method}")))?,
        redirect_uris: serde_json::from_str(&r.try_get::<String, _>("redirect_uris")?)
            .map_err(corrupt)?,
        post_logout_redirect_uris: serde_json::from_str(
            &r.try_get::<String, _>("post_logout_redirect_uris")?,
        )
        .map_err(corrupt)?,
        jwks: jwks
            .map(|j| serde_json::from_str(&j))
            .transpose()
            .map_err(corrupt)?,
        id_token_alg: r.try_get("id_token_alg")?,
    })
}

const COLS: &str = "client_id, name, secret_hash, auth_method, redirect_uris, post_logout_redirect_uris, jwks, id_token_alg";

/// A client by id.
pub async fn by_id(c: &mut Conn, client_id: &str) -> Result<Option<Client>> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLS} FROM clients WHERE client_id = $1"));
    let row = sqlx::query(sql).bind(client_id).fetch_optional(c).await?;
    row.as_ref().map(from_row).transpose()
}

/// How long a looked-up client is reused before it is read again. A client changed or
/// removed by `segl rp` (another process, or another node) is seen within this time.
pub const CACHE_SECS: u64 = 5;
const CACHE_MAX: usize = 10_000;

/// Clients recently read, so the token endpoint does not read the client on every grant.
/// Only clients that exist are kept: a new client is seen at once.
#[derive(Default)]
pub(crate) struct Cache {
    entries: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, Client)>>,
}

impl Cache {
    fn get(&self, id: &str) -> Option<Client> {
        let map = self.entries.lock().ok()?;
        let (at, c) = map.get(id)?;
        (at.elapsed().as_secs() < CACHE_SECS).then(|| c.clone())
    }

    fn put(&self, c: &Client) {
        if let Ok(mut map) = self.entries.lock() {
            if map.len() >= CACHE_MAX {
                map.clear();
            }
            map.insert(c.client_id.clone(), (std::time::Instant::now(), c.clone()));
        }
    }
}

impl crate::Store {
    /// A client by id, from a cache of [`CACHE_SECS`] seconds (see [`Cache`]).
    pub async fn client(&self, client_id: &str) -> Result<Option<Client>> {
        if let Some(c) = self.clients.get(client_id) {
            return Ok(Some(c));
        }
        let found = by_id(&mut *self.read().await?, client_id).await?;
        if let Some(c) = &found {
            self.clients.put(c);
        }
        Ok(found)
    }
}

/// All clients.
pub async fn list(c: &mut Conn) -> Result<Vec<Client>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLS} FROM clients ORDER BY created_at, client_id"
    ));
    let rows = sqlx::query(sql).fetch_all(c).await?;
    rows.iter().map(from_row).collect()
}

/// Updates a client's redirect URIs and secret (the demo client follows the listen address).
pub async fn update_registration(
    c: &mut Conn,
    client_id: &str,
    redirect_uris: &[String],
    post_logout_redirect_uris: &[String],
    secret_hash: Option<&str>,
) -> Result<bool> {
    let uris =
        serde_json::to_string(redirect_uris).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let logout = serde_json::to_string(post_logout_redirect_uris)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let n = sqlx::query(
        "UPDATE clients SET redirect_uris = $2, post_logout_redirect_uris = $3, secret_hash = $4 WHERE client_id = $1",
    )
    .bind(client_id)
    .bind(uris)
    .bind(logout)
    .bind(secret_hash)
    .execute(c)
    .await?
    .rows_affected();
    Ok(n > 0)
}
