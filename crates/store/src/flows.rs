//! Flows: server-side state machines stored as versioned JSON records of our own
//! (`segl_core::flow`). Updates are guarded by a version number, so of two requests
//! racing on one flow exactly one wins.

use sqlx::Row;

use crate::{Conn, Result, StoreError};

/// A stored flow.
#[derive(Clone, Debug)]
pub struct FlowRow {
    /// Flow id (random, URL-safe).
    pub id: String,
    /// `login`, …
    pub kind: String,
    /// SHA-256 of the browser-binding cookie value.
    pub binding_hash: String,
    /// CSRF token the browser must echo.
    pub csrf: String,
    /// The flow record (JSON).
    pub data: String,
    /// Optimistic-concurrency version.
    pub version: i64,
    /// Expiry (unix seconds).
    pub expires_at: i64,
}

/// Inserts a new flow.
pub async fn insert(c: &mut Conn, f: &FlowRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO flows (id, kind, binding_hash, csrf, data, version, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&f.id)
    .bind(&f.kind)
    .bind(&f.binding_hash)
    .bind(&f.csrf)
    .bind(&f.data)
    .bind(f.version)
    .bind(f.expires_at)
    .execute(c)
    .await?;
    Ok(())
}

/// Loads a flow.
pub async fn get(c: &mut Conn, id: &str) -> Result<Option<FlowRow>> {
    let row = sqlx::query(
        "SELECT id, kind, binding_hash, csrf, data, version, expires_at FROM flows WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(c)
    .await?;
    row.map(|r| {
        Ok(FlowRow {
            id: r.try_get("id")?,
            kind: r.try_get("kind")?,
            binding_hash: r.try_get("binding_hash")?,
            csrf: r.try_get("csrf")?,
            data: r.try_get("data")?,
            version: r.try_get("version")?,
            expires_at: r.try_get("expires_at")?,
        })
    })
    .transpose()
}

/// Saves a flow if nobody changed it since `f.version` was read; bumps the version.
pub async fn update(c: &mut Conn, f: &mut FlowRow) -> Result<()> {
    let n = sqlx::query(
        "UPDATE flows SET data = $2, version = version + 1 WHERE id = $1 AND version = $3",
    )
    .bind(&f.id)
    .bind(&f.data)
    .bind(f.version)
    .execute(c)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(StoreError::Conflict);
    }
    f.version += 1;
    Ok(())
}
