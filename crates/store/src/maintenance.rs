//! Maintenance windows (issue 5): the operator's declared closures of ordering channels.
//! The rules (what a window closes, when the pages announce it) are in
//! [`segl_core::maintenance`]; this module keeps the windows.

use segl_core::maintenance::{Channel, Window};
use serde::Serialize;

use crate::db::{Db, Get};
use crate::{Result, StoreError, map_unique};

/// A window as stored, with who added it and when.
#[derive(Clone, Debug, Serialize)]
pub struct Stored {
    /// The window.
    #[serde(flatten)]
    pub window: Window,
    /// When it was added (unix seconds).
    pub created_at: i64,
    /// Who added it (an operator's name or id, for the record).
    pub created_by: String,
}

const SELECT: &str = "SELECT id, channel, starts_at, ends_at, message, created_at, created_by FROM maintenance_windows";

fn stored(r: &dyn Get) -> Result<Stored> {
    let id = r.text(0)?;
    let channel = r.text(1)?;
    let corrupt =
        |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("maintenance window {id}: {e}"));
    let channel = Channel::parse(&channel).map_err(|e| corrupt(&e))?;
    let window = Window::restore(id.clone(), channel, r.int(2)?, r.int(3)?, &r.text(4)?)
        .map_err(|e| corrupt(&e))?;
    Ok(Stored {
        window,
        created_at: r.int(5)?,
        created_by: r.text(6)?,
    })
}

/// Adds a window (already checked by [`Window::new`]).
pub async fn insert(c: &mut impl Db, w: &Window, created_by: &str, now: i64) -> Result<()> {
    c.execute(
        "INSERT INTO maintenance_windows (id, channel, starts_at, ends_at, message, created_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            w.id().into(),
            w.channel().as_str().into(),
            w.from().into(),
            w.to().into(),
            w.message().into(),
            now.into(),
            created_by.into(),
        ],
    )
    .await
    .map_err(|e| match e {
        StoreError::Db(e) => map_unique(e, format!("maintenance window {}", w.id())),
        e => e,
    })?;
    Ok(())
}

/// Every window, ended ones too, by start.
pub async fn all(c: &mut impl Db) -> Result<Vec<Stored>> {
    c.fetch_all(
        &format!("{SELECT} ORDER BY starts_at, ends_at, id"),
        &[],
        stored,
    )
    .await
}

/// The windows that have not ended at `now` (active and future), by start.
pub async fn current(c: &mut impl Db, now: i64) -> Result<Vec<Stored>> {
    c.fetch_all(
        &format!("{SELECT} WHERE ends_at > $1 ORDER BY starts_at, ends_at, id"),
        &[now.into()],
        stored,
    )
    .await
}

/// Removes a window and returns it; an unknown id is [`StoreError::NotFound`].
pub async fn remove(c: &mut impl Db, id: &str) -> Result<Stored> {
    c.fetch_optional(
        "DELETE FROM maintenance_windows WHERE id = $1 \
         RETURNING id, channel, starts_at, ends_at, message, created_at, created_by",
        &[id.into()],
        stored,
    )
    .await?
    .ok_or_else(|| StoreError::NotFound(format!("maintenance window {id}")))
}
