//! What the OIDC provider hands out: authorization codes, access and refresh tokens,
//! single sign-on sessions, pushed authorization requests and used client-assertion ids.
//!
//! Only SHA-256 hashes of codes and tokens are stored, so a copy of the database does not
//! contain a usable credential. Every code and token carries a `grant_id`; reusing a code
//! or a rotated refresh token revokes everything with that id.

use sqlx::Row;

use crate::{Conn, Result, StoreError, flag};

/// A stored code or token.
#[derive(Clone, Debug)]
pub struct TokenRow {
    /// Hash of the value.
    pub hash: String,
    /// The client.
    pub client_id: String,
    /// The person.
    pub person_id: String,
    /// Groups related codes and tokens.
    pub grant_id: String,
    /// The grant record (JSON of `segl_core::oidc::Grant`).
    pub grant_data: String,
    /// Expiry (unix seconds).
    pub expires_at: i64,
}

/// Outcome of redeeming a one-time value (code, refresh token).
#[derive(Clone, Debug)]
pub enum Redeem {
    /// First use: the row, now marked used.
    Fresh(TokenRow),
    /// Used before: the row, so the caller can revoke its grant.
    Reused(TokenRow),
    /// Unknown or expired.
    Invalid,
}

fn token_row(r: &sqlx::any::AnyRow, hash_col: &str) -> Result<TokenRow> {
    Ok(TokenRow {
        hash: r.try_get(hash_col)?,
        client_id: r.try_get("client_id")?,
        person_id: r.try_get("person_id")?,
        grant_id: r.try_get("grant_id")?,
        grant_data: r.try_get("grant_data")?,
        expires_at: r.try_get("expires_at")?,
    })
}

/// Stores an authorization code.
pub async fn insert_code(c: &mut Conn, t: &TokenRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO auth_codes (code_hash, client_id, person_id, grant_id, grant_data, expires_at, used_at) \
         VALUES ($1, $2, $3, $4, $5, $6, NULL)",
    )
    .bind(&t.hash)
    .bind(&t.client_id)
    .bind(&t.person_id)
    .bind(&t.grant_id)
    .bind(&t.grant_data)
    .bind(t.expires_at)
    .execute(c)
    .await?;
    Ok(())
}

/// Redeems a code once: the first caller gets [`Redeem::Fresh`], every later one
/// [`Redeem::Reused`].
pub async fn redeem_code(c: &mut Conn, hash: &str, now: i64) -> Result<Redeem> {
    let used = sqlx::query(
        "UPDATE auth_codes SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2 \
         RETURNING code_hash, client_id, person_id, grant_id, grant_data, expires_at",
    )
    .bind(hash)
    .bind(now)
    .fetch_optional(&mut *c)
    .await?;
    if let Some(r) = used {
        return Ok(Redeem::Fresh(token_row(&r, "code_hash")?));
    }
    let again = sqlx::query(
        "SELECT code_hash, client_id, person_id, grant_id, grant_data, expires_at FROM auth_codes \
         WHERE code_hash = $1 AND used_at IS NOT NULL",
    )
    .bind(hash)
    .fetch_optional(c)
    .await?;
    match again {
        Some(r) => Ok(Redeem::Reused(token_row(&r, "code_hash")?)),
        None => Ok(Redeem::Invalid),
    }
}

/// Stores an access token.
pub async fn insert_access(c: &mut Conn, t: &TokenRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO access_tokens (token_hash, client_id, person_id, grant_id, grant_data, expires_at, revoked) \
         VALUES ($1, $2, $3, $4, $5, $6, 0)",
    )
    .bind(&t.hash)
    .bind(&t.client_id)
    .bind(&t.person_id)
    .bind(&t.grant_id)
    .bind(&t.grant_data)
    .bind(t.expires_at)
    .execute(c)
    .await?;
    Ok(())
}

/// A live access token.
pub async fn access(c: &mut Conn, hash: &str, now: i64) -> Result<Option<TokenRow>> {
    let row = sqlx::query(
        "SELECT token_hash, client_id, person_id, grant_id, grant_data, expires_at FROM access_tokens \
         WHERE token_hash = $1 AND revoked = 0 AND expires_at > $2",
    )
    .bind(hash)
    .bind(now)
    .fetch_optional(c)
    .await?;
    row.as_ref().map(|r| token_row(r, "token_hash")).transpose()
}

/// Stores a refresh token.
pub async fn insert_refresh(c: &mut Conn, t: &TokenRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, client_id, person_id, grant_id, grant_data, expires_at, used_at, revoked) \
         VALUES ($1, $2, $3, $4, $5, $6, NULL, 0)",
    )
    .bind(&t.hash)
    .bind(&t.client_id)
    .bind(&t.person_id)
    .bind(&t.grant_id)
    .bind(&t.grant_data)
    .bind(t.expires_at)
    .execute(c)
    .await?;
    Ok(())
}

/// Redeems a refresh token once (rotation). A token presented again is
/// [`Redeem::Reused`]; a revoked or expired one [`Redeem::Invalid`].
pub async fn redeem_refresh(c: &mut Conn, hash: &str, now: i64) -> Result<Redeem> {
    let used = sqlx::query(
        "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND revoked = 0 \
         AND expires_at > $2 RETURNING token_hash, client_id, person_id, grant_id, grant_data, expires_at",
    )
    .bind(hash)
    .bind(now)
    .fetch_optional(&mut *c)
    .await?;
    if let Some(r) = used {
        return Ok(Redeem::Fresh(token_row(&r, "token_hash")?));
    }
    let again = sqlx::query(
        "SELECT token_hash, client_id, person_id, grant_id, grant_data, expires_at FROM refresh_tokens \
         WHERE token_hash = $1 AND used_at IS NOT NULL",
    )
    .bind(hash)
    .fetch_optional(c)
    .await?;
    match again {
        Some(r) => Ok(Redeem::Reused(token_row(&r, "token_hash")?)),
        None => Ok(Redeem::Invalid),
    }
}

/// Revokes every access and refresh token of a grant; returns how many.
pub async fn revoke_grant(c: &mut Conn, grant_id: &str) -> Result<u64> {
    let a = sqlx::query("UPDATE access_tokens SET revoked = 1 WHERE grant_id = $1 AND revoked = 0")
        .bind(grant_id)
        .execute(&mut *c)
        .await?
        .rows_affected();
    let r =
        sqlx::query("UPDATE refresh_tokens SET revoked = 1 WHERE grant_id = $1 AND revoked = 0")
            .bind(grant_id)
            .execute(c)
            .await?
            .rows_affected();
    Ok(a + r)
}

/// A single sign-on session.
#[derive(Clone, Debug)]
pub struct Session {
    /// Hash of the session cookie.
    pub id_hash: String,
    /// The person.
    pub person_id: String,
    /// When they authenticated.
    pub auth_time: i64,
    /// Level reached.
    pub acr: String,
    /// Methods used (JSON array).
    pub amr: Vec<String>,
    /// Expiry.
    pub expires_at: i64,
}

/// Starts a session.
pub async fn insert_session(c: &mut Conn, s: &Session) -> Result<()> {
    sqlx::query(
        "INSERT INTO sessions (id_hash, person_id, auth_time, acr, amr, expires_at, ended) VALUES ($1, $2, $3, $4, $5, $6, 0)",
    )
    .bind(&s.id_hash)
    .bind(&s.person_id)
    .bind(s.auth_time)
    .bind(&s.acr)
    .bind(serde_json::to_string(&s.amr).map_err(|e| StoreError::Corrupt(e.to_string()))?)
    .bind(s.expires_at)
    .execute(c)
    .await?;
    Ok(())
}

/// A live session.
pub async fn session(c: &mut Conn, id_hash: &str, now: i64) -> Result<Option<Session>> {
    let row = sqlx::query(
        "SELECT id_hash, person_id, auth_time, acr, amr, expires_at FROM sessions \
         WHERE id_hash = $1 AND ended = 0 AND expires_at > $2",
    )
    .bind(id_hash)
    .bind(now)
    .fetch_optional(c)
    .await?;
    row.map(|r| {
        Ok(Session {
            id_hash: r.try_get("id_hash")?,
            person_id: r.try_get("person_id")?,
            auth_time: r.try_get("auth_time")?,
            acr: r.try_get("acr")?,
            amr: serde_json::from_str(&r.try_get::<String, _>("amr")?)
                .map_err(|e| StoreError::Corrupt(format!("session amr: {e}")))?,
            expires_at: r.try_get("expires_at")?,
        })
    })
    .transpose()
}

/// Ends a session.
pub async fn end_session(c: &mut Conn, id_hash: &str) -> Result<bool> {
    let n = sqlx::query("UPDATE sessions SET ended = $2 WHERE id_hash = $1 AND ended = 0")
        .bind(id_hash)
        .bind(flag(true))
        .execute(c)
        .await?
        .rows_affected();
    Ok(n > 0)
}

/// Stores a pushed authorization request (RFC 9126).
pub async fn insert_par(
    c: &mut Conn,
    uri_hash: &str,
    client_id: &str,
    params: &str,
    expires_at: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO par_requests (uri_hash, client_id, params, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(uri_hash)
        .bind(client_id)
        .bind(params)
        .bind(expires_at)
        .execute(c)
        .await?;
    Ok(())
}

/// Takes a pushed request once: (client_id, params). Deleted on use, as RFC 9126 advises.
pub async fn take_par(c: &mut Conn, uri_hash: &str, now: i64) -> Result<Option<(String, String)>> {
    let row = sqlx::query("DELETE FROM par_requests WHERE uri_hash = $1 AND expires_at > $2 RETURNING client_id, params")
        .bind(uri_hash)
        .bind(now)
        .fetch_optional(c)
        .await?;
    row.map(|r| Ok((r.try_get("client_id")?, r.try_get("params")?)))
        .transpose()
}

/// Records a client assertion's `jti`; false when it was seen before (a replay).
pub async fn use_jti(c: &mut Conn, key: &str, expires_at: i64) -> Result<bool> {
    let n = sqlx::query(
        "INSERT INTO used_jtis (key, expires_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
    )
    .bind(key)
    .bind(expires_at)
    .execute(c)
    .await?
    .rows_affected();
    Ok(n == 1)
}
