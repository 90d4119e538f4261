//! Flows: server-side state machines stored as versioned JSON records of our own
//! (`segl_core::flow`). Updates are guarded by a version number, so of two requests
//! racing on one flow exactly one wins.
//!
//! Each node also keeps the flows it saved last ([`crate::Store::cached_flow`]), so a step
//! need not read its flow back from the database. A cached row may be stale (another node,
//! or another request, saved the flow since), so a step that used one must end with the
//! version-guarded [`update`] of that row: if the flow changed, the update finds no row,
//! the step's transaction is undone, and the step is run again from the database.

use crate::Result;
use crate::db::Db;

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
    crate::db::execute_one(
        c,
        "UPDATE flows SET data = $2, version = version + 1 WHERE id = $1 AND version = $3",
        &[(&f.id).into(), (&f.data).into(), f.version.into()],
    )
    .await?;
    f.version += 1;
    Ok(())
}

/// The most flows a node keeps; when full it starts again empty (a miss costs one read).
const CACHE_MAX: usize = 10_000;

/// The flows this node saved last, by id (see the module's documentation).
#[derive(Default)]
pub(crate) struct Cache {
    entries: std::sync::Mutex<std::collections::HashMap<String, FlowRow>>,
}

impl crate::Store {
    /// The flow `id` as this node last saved it, unless it has expired. It may be stale:
    /// only for a step that ends with [`update`] of this very row, in the same transaction.
    pub fn cached_flow(&self, id: &str, now: i64) -> Option<FlowRow> {
        let map = self.flows.entries.lock().ok()?;
        map.get(id).filter(|f| f.expires_at > now).cloned()
    }

    /// Keeps `row` once its transaction has committed. An older version than the one kept
    /// (a slower request finishing late) is ignored.
    pub fn remember_flow(&self, row: &FlowRow) {
        let Ok(mut map) = self.flows.entries.lock() else {
            return;
        };
        if map.get(&row.id).is_some_and(|f| f.version > row.version) {
            return;
        }
        if map.len() >= CACHE_MAX && !map.contains_key(&row.id) {
            map.clear();
        }
        map.insert(row.id.clone(), row.clone());
    }

    /// Drops the flow `id`: its transaction failed, or something else saved it.
    pub fn forget_flow(&self, id: &str) {
        if let Ok(mut map) = self.flows.entries.lock() {
            map.remove(id);
        }
    }
}
