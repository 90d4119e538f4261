//! Code devices (HOTP/TOTP). Seeds are sealed with the store's key; the serial is the
//! additional data, so a sealed seed cannot be moved to another device's row.

use segl_crypto::otp::OtpAlgorithm;
use segl_crypto::pskc::{PskcToken, TokenKind};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::db::{Db, Get};
use crate::{Conn, Result, Store, StoreError, map_unique};

/// Device state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Usable.
    Active,
    /// Blocked after too many wrong codes; a resync or support unblocks it.
    Blocked,
}

impl DeviceState {
    fn as_str(self) -> &'static str {
        match self {
            DeviceState::Active => "active",
            DeviceState::Blocked => "blocked",
        }
    }
}

/// A code device with its counters (the seed is opened only when needed).
#[derive(Clone, Debug)]
pub struct Device {
    /// Serial number printed on the device.
    pub serial: String,
    /// Manufacturer from the PSKC file.
    pub manufacturer: Option<String>,
    /// HOTP or TOTP.
    pub kind: TokenKind,
    /// HMAC algorithm.
    pub algorithm: OtpAlgorithm,
    /// Code length.
    pub digits: u8,
    /// Sealed seed.
    sealed: Vec<u8>,
    /// HOTP: next counter expected.
    pub counter: u64,
    /// TOTP: learned drift in steps.
    pub drift: i64,
    /// TOTP: last step accepted (replay guard).
    pub last_step: Option<i64>,
    /// Wrong codes in a row.
    pub failures: i64,
    /// Active or blocked.
    pub state: DeviceState,
    /// Person it is assigned to.
    pub person_id: Option<String>,
}

impl Device {
    /// Opens the seed.
    pub fn secret(&self, store: &Store) -> Result<Zeroizing<Vec<u8>>> {
        store
            .seal()
            .open(&self.sealed, self.serial.as_bytes())
            .map_err(|_| StoreError::Seal)
    }
}

/// What `segl token list` shows.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceSummary {
    /// Serial number.
    pub serial: String,
    /// `hotp` or `totp`.
    pub kind: &'static str,
    /// Code length.
    pub digits: u8,
    /// `active` or `blocked`.
    pub state: DeviceState,
    /// Whether assigned to a person.
    pub assigned: bool,
    /// Wrong codes in a row.
    pub failures: i64,
}

impl From<&Device> for DeviceSummary {
    fn from(d: &Device) -> Self {
        DeviceSummary {
            serial: d.serial.clone(),
            kind: match d.kind {
                TokenKind::Hotp { .. } => "hotp",
                TokenKind::Totp { .. } => "totp",
            },
            digits: d.digits,
            state: d.state,
            assigned: d.person_id.is_some(),
            failures: d.failures,
        }
    }
}

// The columns `device` reads, in its order.
macro_rules! device_select {
    ($rest:literal) => {
        concat!(
            "SELECT serial, manufacturer, kind, algorithm, digits, secret, counter, step, t0, drift, \
             last_step, failures, state, person_id FROM otp_devices ",
            $rest
        )
    };
}

fn device(r: &dyn Get) -> Result<Device> {
    let kind = r.text(2)?;
    let kind = match kind.as_str() {
        "hotp" => TokenKind::Hotp {
            counter: r.int(6)? as u64,
        },
        "totp" => TokenKind::Totp {
            step: r.int(7)? as u32,
            t0: r.int(8)?,
        },
        other => return Err(StoreError::Corrupt(format!("device kind {other}"))),
    };
    let alg = r.text(3)?;
    let state = r.text(12)?;
    Ok(Device {
        serial: r.text(0)?,
        manufacturer: r.opt_text(1)?,
        kind,
        algorithm: alg
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("device algorithm {alg}")))?,
        digits: r.int(4)? as u8,
        sealed: r.blob(5)?,
        counter: r.int(6)? as u64,
        drift: r.int(9)?,
        last_step: r.opt_int(10)?,
        failures: r.int(11)?,
        state: if state == "blocked" {
            DeviceState::Blocked
        } else {
            DeviceState::Active
        },
        person_id: r.opt_text(13)?,
    })
}

/// Imports tokens in the caller's transaction; a serial already present is a
/// [`StoreError::Duplicate`] naming it, and the caller rolls everything back.
pub async fn import(c: &mut Conn, store: &Store, t: &PskcToken, now: i64) -> Result<()> {
    let sealed = store.seal().seal(&t.secret, t.serial.as_bytes());
    let (kind, counter, step, t0) = match t.kind {
        TokenKind::Hotp { counter } => ("hotp", counter as i64, 30i64, 0i64),
        TokenKind::Totp { step, t0 } => ("totp", 0, i64::from(step), t0),
    };
    sqlx::query(
        "INSERT INTO otp_devices (serial, manufacturer, kind, algorithm, digits, secret, counter, step, t0, \
         drift, last_step, failures, state, person_id, imported_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, NULL, 0, 'active', NULL, $10)",
    )
    .bind(&t.serial)
    .bind(&t.manufacturer)
    .bind(kind)
    .bind(t.algorithm.as_str())
    .bind(i64::from(t.digits))
    .bind(sealed)
    .bind(counter)
    .bind(step)
    .bind(t0)
    .bind(now)
    .execute(c)
    .await
    .map_err(|e| map_unique(e, format!("code device {}", t.serial)))?;
    Ok(())
}

/// A device by serial.
pub async fn by_serial(c: &mut impl Db, serial: &str) -> Result<Option<Device>> {
    c.fetch_optional(
        device_select!("WHERE serial = $1"),
        &[serial.into()],
        device,
    )
    .await
}

/// The person's device: an active one before a blocked one (after a block and a new
/// order the blocked device stays on record, and the new one is used), then the newest.
pub async fn for_person(c: &mut impl Db, person_id: &str) -> Result<Option<Device>> {
    c.fetch_optional(
        device_select!(
            "WHERE person_id = $1 \
             ORDER BY CASE WHEN state = 'active' THEN 0 ELSE 1 END, imported_at DESC, serial LIMIT 1"
        ),
        &[person_id.into()],
        device,
    )
    .await
}

/// The device of the person with this national identity number, chosen as by
/// [`for_person`], without looking the person up first.
pub async fn for_nin(c: &mut impl Db, nin: &str) -> Result<Option<Device>> {
    c.fetch_optional(
        device_select!(
            "WHERE person_id = (SELECT id FROM persons WHERE nin = $1) \
             ORDER BY CASE WHEN state = 'active' THEN 0 ELSE 1 END, imported_at DESC, serial LIMIT 1"
        ),
        &[nin.into()],
        device,
    )
    .await
}

/// All devices, or a person's.
pub async fn list(c: &mut impl Db, person_id: Option<&str>) -> Result<Vec<Device>> {
    match person_id {
        Some(p) => {
            c.fetch_all(
                device_select!("WHERE person_id = $1 ORDER BY serial"),
                &[p.into()],
                device,
            )
            .await
        }
        None => {
            c.fetch_all(device_select!("ORDER BY serial"), &[], device)
                .await
        }
    }
}

/// Assigns a device to a person.
pub async fn assign(c: &mut impl Db, serial: &str, person_id: &str) -> Result<()> {
    let n = c
        .execute(
            "UPDATE otp_devices SET person_id = $2 WHERE serial = $1",
            &[serial.into(), person_id.into()],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("code device {serial}")));
    }
    Ok(())
}

/// The first code device in stock (imported, not assigned, not blocked), by serial: the
/// one an order for a code device reserves.
pub async fn first_free(c: &mut impl Db) -> Result<Option<String>> {
    c.fetch_optional(
        "SELECT serial FROM otp_devices WHERE person_id IS NULL AND state = 'active' \
         AND serial NOT IN (SELECT device_serial FROM orders WHERE device_serial IS NOT NULL \
         AND state IN ('approved', 'activated')) ORDER BY serial LIMIT 1",
        &[],
        |r| r.text(0),
    )
    .await
}

/// Records an accepted code: HOTP moves the counter past it, TOTP remembers the step and
/// the drift; failures reset. Guarded by the old values, so of two requests racing with the
/// same code only one succeeds ([`StoreError::Conflict`] for the other).
pub async fn accepted(
    c: &mut impl Db,
    d: &Device,
    counter: u64,
    last_step: Option<i64>,
    drift: i64,
) -> Result<()> {
    crate::db::execute_one(
        c,
        "UPDATE otp_devices SET counter = $2, last_step = $3, drift = $4, failures = 0, state = 'active' \
         WHERE serial = $1 AND counter = $5 AND COALESCE(last_step, -1) = $6",
        &[
            (&d.serial).into(),
            (counter as i64).into(),
            last_step.into(),
            drift.into(),
            (d.counter as i64).into(),
            d.last_step.unwrap_or(-1).into(),
        ],
    )
    .await
}

/// Counts a wrong code atomically and blocks at `max`; returns (failures, blocked).
pub async fn failed(c: &mut impl Db, serial: &str, max: u32) -> Result<(i64, bool)> {
    c.fetch_optional(
        "UPDATE otp_devices SET failures = failures + 1, \
         state = CASE WHEN failures + 1 >= $2 THEN 'blocked' ELSE state END \
         WHERE serial = $1 RETURNING failures, state",
        &[serial.into(), i64::from(max).into()],
        |r| Ok((r.int(0)?, r.text(1)? == DeviceState::Blocked.as_str())),
    )
    .await?
    .ok_or_else(|| StoreError::NotFound(format!("code device {serial}")))
}

/// Sets counters after a resync and unblocks.
pub async fn resynced(
    c: &mut Conn,
    serial: &str,
    counter: u64,
    last_step: Option<i64>,
    drift: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE otp_devices SET counter = $2, last_step = $3, drift = $4, failures = 0, state = 'active' WHERE serial = $1",
    )
    .bind(serial)
    .bind(counter as i64)
    .bind(last_step)
    .bind(drift)
    .execute(c)
    .await?;
    Ok(())
}

/// Clears the failure counter and unblocks (support).
pub async fn unblock(c: &mut Conn, serial: &str) -> Result<()> {
    let n = sqlx::query("UPDATE otp_devices SET failures = 0, state = 'active' WHERE serial = $1")
        .bind(serial)
        .execute(c)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(StoreError::NotFound(format!("code device {serial}")));
    }
    Ok(())
}

/// Blocks every code device of the person; returns their serials.
pub async fn block_for_person(c: &mut impl Db, person_id: &str) -> Result<Vec<String>> {
    let serials = c
        .fetch_all(
            "SELECT serial FROM otp_devices WHERE person_id = $1 AND state <> 'blocked' ORDER BY serial",
            &[person_id.into()],
            |r| r.text(0),
        )
        .await?;
    c.execute(
        "UPDATE otp_devices SET state = 'blocked' WHERE person_id = $1",
        &[person_id.into()],
    )
    .await?;
    Ok(serials)
}
