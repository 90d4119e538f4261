//! Flows: server-side state machines stored as versioned JSON records of our own
//! (`segl_core::flow`). Updates are guarded by a version number, so of two requests
//! racing on one flow exactly one wins.

use crate::db::Db;
use crate::{Result, StoreError};

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
pub async fn insert(c: &mut impl Db, f: &FlowRow) -> Result<()> {
    c.execute(
        "INSERT INTO flows (id, kind, binding_hash, csrf, data, version, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            (&f.id).into(),
            (&f.kind).into(),
            (&f.binding_hash).into(),
            (&f.csrf).into(),
            (&f.data).into(),
            f.version.into(),
            f.expires_at.into(),
        ],
    )
    .await?;
    Ok(())
}

/// Loads a flow.
pub async fn get(c: &mut impl Db, id: &str) -> Result<Option<FlowRow>> {
    c.fetch_optional(
        "SELECT id, kind, binding_hash, csrf, data, version, expires_at FROM flows WHERE id = $1",
        &[id.into()],
        |r| {
            Ok(FlowRow {
                id: r.text(0)?,
                kind: r.text(1)?,
                binding_hash: r.text(2)?,
                csrf: r.text(3)?,
                data: r.text(4)?,
                version: r.int(5)?,
                expires_at: r.int(6)?,
            })
        },
    )
    .await
}

/// Saves a flow if nobody changed it since `f.version` was read; bumps the version.
pub async fn update(c: &mut impl Db, f: &mut FlowRow) -> Result<()> {
    let n = c
        .execute(
            "UPDATE flows SET data = $2, version = version + 1 WHERE id = $1 AND version = $3",
            &[(&f.id).into(), (&f.data).into(), f.version.into()],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::Conflict);
    }
    f.version += 1;
    Ok(())
}
