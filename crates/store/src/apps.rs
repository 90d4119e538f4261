//! The phone app's devices: the public half of each device key, under the app id that the
//! app shows and support searches by.
//!
//! Approval requests ([`AppRequest`]) are answered once ([`decide`]).
//!
//! One active device per person. [`activate`] deactivates the person's current device and
//! registers the new one in the caller's transaction; a partial unique index makes a
//! second active device impossible even if two activations race (the loser gets
//! [`StoreError::Conflict`]).

use serde::Serialize;
use sqlx::Row;

use crate::db::{Db, Get};
use crate::{Conn, Result, StoreError};

/// Whether a device may answer approval requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AppDeviceState {
    /// The person's device: its signatures are accepted.
    Active,
    /// Replaced, deactivated or blocked: its signatures are refused, and it is told so the
    /// next time it connects.
    Deactivated,
}

/// Why a device was deactivated; kept for support and for the device's own status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Deactivation {
    /// A new device was activated for the person.
    Replaced,
    /// The person deactivated it (on My page or in the app).
    ByPerson,
    /// The person's eID was blocked.
    Blocked,
    /// A support agent deactivated it.
    BySupport,
}

impl Deactivation {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Deactivation::Replaced => "replaced",
            Deactivation::ByPerson => "by_person",
            Deactivation::Blocked => "blocked",
            Deactivation::BySupport => "by_support",
        }
    }
}

/// A registered device.
#[derive(Clone, Debug, Serialize)]
pub struct AppDevice {
    /// The id the app shows.
    pub app_id: String,
    /// Its person.
    pub person_id: String,
    /// The device's P-256 public key, base64url of the uncompressed point.
    pub public_key: String,
    /// A name the person gave it, if any.
    pub label: Option<String>,
    /// Active or not.
    pub state: AppDeviceState,
    /// When it was activated (unix seconds).
    pub activated_at: i64,
    /// When it stopped being active.
    pub deactivated_at: Option<i64>,
    /// Why (a [`Deactivation`] name).
    pub deactivated_why: Option<String>,
    /// When it last connected.
    pub last_seen_at: Option<i64>,
}

const COLS: &str = "app_id, person_id, public_key, label, state, activated_at, deactivated_at, deactivated_why, last_seen_at";

fn from_row(r: &dyn Get) -> Result<AppDevice> {
    let state = r.text(4)?;
    Ok(AppDevice {
        app_id: r.text(0)?,
        person_id: r.text(1)?,
        public_key: r.text(2)?,
        label: r.opt_text(3)?,
        state: match state.as_str() {
            "active" => AppDeviceState::Active,
            "deactivated" => AppDeviceState::Deactivated,
            other => return Err(StoreError::Corrupt(format!("app device state {other:?}"))),
        },
        activated_at: r.int(5)?,
        deactivated_at: r.opt_int(6)?,
        deactivated_why: r.opt_text(7)?,
        last_seen_at: r.opt_int(8)?,
    })
}

/// A device to register.
#[derive(Clone, Debug)]
pub struct NewAppDevice<'a> {
    /// The id the app will show (chosen by the server).
    pub app_id: &'a str,
    /// Its person.
    pub person_id: &'a str,
    /// The checked public key (see `segl_crypto::device::public_key_from_b64url`).
    pub public_key: &'a str,
    /// Optional name.
    pub label: Option<&'a str>,
}

/// Registers `dev` as the person's one active device and deactivates the one it replaces,
/// whose app id is returned. Run it in a transaction so both happen or neither does.
pub async fn activate(c: &mut Conn, dev: &NewAppDevice<'_>, now: i64) -> Result<Option<String>> {
    let replaced = sqlx::query(
        "UPDATE app_devices SET state = 'deactivated', deactivated_at = $2, deactivated_why = $3 \
         WHERE person_id = $1 AND state = 'active' RETURNING app_id",
    )
    .bind(dev.person_id)
    .bind(now)
    .bind(Deactivation::Replaced.as_str())
    .fetch_optional(&mut *c)
    .await?
    .map(|r| r.try_get::<String, _>("app_id"))
    .transpose()?;
    sqlx::query(
        "INSERT INTO app_devices (app_id, person_id, public_key, label, state, activated_at) \
         VALUES ($1, $2, $3, $4, 'active', $5)",
    )
    .bind(dev.app_id)
    .bind(dev.person_id)
    .bind(dev.public_key)
    .bind(dev.label)
    .bind(now)
    .execute(c)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            // The one-active index (its name on PostgreSQL, its column on SQLite) means
            // another activation for this person won the race.
            let msg = db.message();
            if db.constraint() == Some("app_devices_one_active")
                || msg.contains("app_devices.person_id")
            {
                StoreError::Conflict
            } else {
                StoreError::Duplicate("an app device with this app id or key".into())
            }
        }
        _ => StoreError::Db(e),
    })?;
    Ok(replaced)
}

/// A device by the id the app shows.
pub async fn by_app_id(c: &mut impl Db, app_id: &str) -> Result<Option<AppDevice>> {
    let sql = format!("SELECT {COLS} FROM app_devices WHERE app_id = $1");
    c.fetch_optional(&sql, &[app_id.into()], from_row).await
}

/// The person's active device, if any.
pub async fn active_for(c: &mut impl Db, person_id: &str) -> Result<Option<AppDevice>> {
    let sql = format!("SELECT {COLS} FROM app_devices WHERE person_id = $1 AND state = 'active'");
    c.fetch_optional(&sql, &[person_id.into()], from_row).await
}

/// All of a person's devices, newest first (for My page and support).
pub async fn for_person(c: &mut impl Db, person_id: &str) -> Result<Vec<AppDevice>> {
    let sql = format!(
        "SELECT {COLS} FROM app_devices WHERE person_id = $1 ORDER BY activated_at DESC, app_id"
    );
    c.fetch_all(&sql, &[person_id.into()], from_row).await
}

/// Deactivates an active device; false when it was not active (or does not exist).
pub async fn deactivate(
    c: &mut impl Db,
    app_id: &str,
    why: Deactivation,
    now: i64,
) -> Result<bool> {
    let n = c
        .execute(
            "UPDATE app_devices SET state = 'deactivated', deactivated_at = $2, deactivated_why = $3 \
             WHERE app_id = $1 AND state = 'active'",
            &[app_id.into(), now.into(), why.as_str().into()],
        )
        .await?;
    Ok(n == 1)
}

/// Records that the device connected.
pub async fn seen(c: &mut impl Db, app_id: &str, now: i64) -> Result<()> {
    c.execute(
        "UPDATE app_devices SET last_seen_at = $2 WHERE app_id = $1",
        &[app_id.into(), now.into()],
    )
    .await?;
    Ok(())
}

/// Records the replay key of a signed device call (what was signed, hashed) until
/// `expires_at`; false when it is recorded already: the same call a second time.
///
/// The keys share `used_jtis` with the client assertions' ids (`grants::use_jti`, the same
/// statement), so the purge of expired ids covers both. The device API's keys are `dev:`
/// and a hash; a client's hold a U+001F separator, so the two cannot meet.
pub async fn use_call_key(c: &mut impl Db, key: &str, expires_at: i64) -> Result<bool> {
    let n = c
        .execute(
            "INSERT INTO used_jtis (key, expires_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            &[key.into(), expires_at.into()],
        )
        .await?;
    Ok(n == 1)
}

/// What became of an approval request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// Waiting for the device's answer.
    Pending,
    /// "Yes, it's me."
    Approved,
    /// "No, that's not me."
    Denied,
    /// The flow was cancelled or ended before an answer.
    Cancelled,
}

impl RequestState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Approved => "approved",
            RequestState::Denied => "denied",
            RequestState::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Result<RequestState> {
        Ok(match s {
            "pending" => RequestState::Pending,
            "approved" => RequestState::Approved,
            "denied" => RequestState::Denied,
            "cancelled" => RequestState::Cancelled,
            other => return Err(StoreError::Corrupt(format!("app request state {other:?}"))),
        })
    }
}

/// An approval request as stored.
#[derive(Clone, Debug, Serialize)]
pub struct AppRequest {
    /// Request id (what the device signs).
    pub id: String,
    /// The person asked.
    pub person_id: String,
    /// The device asked.
    pub app_id: String,
    /// The login or signing flow waiting for the answer.
    pub flow_id: String,
    /// The service's name, shown in the app.
    pub rp_name: String,
    /// The text shown in the app.
    pub text: String,
    /// The code shown in both the browser and the app.
    pub verification_code: String,
    /// When it was sent (unix seconds).
    pub created_at: i64,
    /// When it lapses.
    pub expires_at: i64,
    /// Its state.
    pub state: RequestState,
    /// When it was answered or cancelled.
    pub decided_at: Option<i64>,
    /// How the key was unlocked (`pin`, `face`, `fpt`), when approved with one.
    pub user_verification: Option<String>,
    /// The device's signature over the answer (base64url), kept as evidence.
    pub signature: Option<String>,
}

const REQUEST_COLS: &str = "id, person_id, app_id, flow_id, rp_name, text, verification_code, \
     created_at, expires_at, state, decided_at, user_verification, signature";

fn request_row(r: &dyn Get) -> Result<AppRequest> {
    request_row_at(r, 0)
}

/// A request from the row's columns `at` … `at + 12`, in the order of [`REQUEST_COLS`].
fn request_row_at(r: &dyn Get, at: usize) -> Result<AppRequest> {
    Ok(AppRequest {
        id: r.text(at)?,
        person_id: r.text(at + 1)?,
        app_id: r.text(at + 2)?,
        flow_id: r.text(at + 3)?,
        rp_name: r.text(at + 4)?,
        text: r.text(at + 5)?,
        verification_code: r.text(at + 6)?,
        created_at: r.int(at + 7)?,
        expires_at: r.int(at + 8)?,
        state: RequestState::parse(&r.text(at + 9)?)?,
        decided_at: r.opt_int(at + 10)?,
        user_verification: r.opt_text(at + 11)?,
        signature: r.opt_text(at + 12)?,
    })
}

/// Stores a new request in the `pending` state (the given `state` is ignored).
pub async fn insert_request(c: &mut impl Db, q: &AppRequest) -> Result<()> {
    c.execute(
        "INSERT INTO app_requests (id, person_id, app_id, flow_id, rp_name, text, verification_code, \
         created_at, expires_at, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending')",
        &[
            (&q.id).into(),
            (&q.person_id).into(),
            (&q.app_id).into(),
            (&q.flow_id).into(),
            (&q.rp_name).into(),
            (&q.text).into(),
            (&q.verification_code).into(),
            q.created_at.into(),
            q.expires_at.into(),
        ],
    )
    .await?;
    Ok(())
}

/// A request by id.
pub async fn request(c: &mut impl Db, id: &str) -> Result<Option<AppRequest>> {
    let sql = format!("SELECT {REQUEST_COLS} FROM app_requests WHERE id = $1");
    c.fetch_optional(&sql, &[id.into()], request_row).await
}

/// The requests a device still has to answer, oldest first (the push on connect and the
/// polling fallback).
pub async fn pending_for(c: &mut impl Db, app_id: &str, now: i64) -> Result<Vec<AppRequest>> {
    let sql = format!(
        "SELECT {REQUEST_COLS} FROM app_requests WHERE app_id = $1 AND state = 'pending' \
         AND expires_at > $2 ORDER BY created_at, id"
    );
    c.fetch_all(&sql, &[app_id.into(), now.into()], request_row)
        .await
}

/// What [`pending_for`] gives, in one query, when the device is active; `None` when it is
/// not active or unknown. An app's event stream reads this on every wake-up.
pub async fn pending_if_active(
    c: &mut impl Db,
    app_id: &str,
    now: i64,
) -> Result<Option<Vec<AppRequest>>> {
    // Built once: it runs on every wake-up of every app's stream.
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let cols: Vec<String> = REQUEST_COLS
            .split(',')
            .map(|col| format!("r.{}", col.trim()))
            .collect();
        format!(
            "SELECT d.state, {} FROM app_devices d LEFT JOIN app_requests r \
             ON r.app_id = d.app_id AND r.state = 'pending' AND r.expires_at > $2 \
             WHERE d.app_id = $1 ORDER BY r.created_at, r.id",
            cols.join(", ")
        )
    });
    let rows = c
        .fetch_all(&SQL, &[app_id.into(), now.into()], |r| {
            let active = r.text(0)? == "active";
            // No waiting request: one row, its request columns NULL.
            let request = match r.opt_text(1)? {
                Some(_) => Some(request_row_at(r, 1)?),
                None => None,
            };
            Ok((active, request))
        })
        .await?;
    match rows.first() {
        Some((true, _)) => Ok(Some(rows.into_iter().filter_map(|(_, q)| q).collect())),
        _ => Ok(None),
    }
}

/// How many requests wait for a device now (not answered, not lapsed).
pub async fn pending_count(c: &mut impl Db, app_id: &str, now: i64) -> Result<i64> {
    Ok(c
        .fetch_optional(
            "SELECT COUNT(*) FROM app_requests WHERE app_id = $1 AND state = 'pending' AND expires_at > $2",
            &[app_id.into(), now.into()],
            |r| r.int(0),
        )
        .await?
        .unwrap_or(0))
}

/// An answer from a device, already checked against the device's key.
#[derive(Clone, Copy, Debug)]
pub struct Answer<'a> {
    /// Approved or denied.
    pub approve: bool,
    /// How the key was unlocked, when it was.
    pub user_verification: Option<&'a str>,
    /// The signature (base64url), kept as evidence.
    pub signature: &'a str,
}

/// What [`decide`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decided {
    /// This answer was recorded; the request is now approved or denied.
    Recorded(RequestState),
    /// The request was already answered or cancelled (a replay, or the second of two
    /// racing answers).
    AlreadyDecided(RequestState),
    /// Too late: the request has lapsed.
    Expired,
    /// The request was sent to another device.
    WrongDevice,
    /// The device is no longer active (replaced, deactivated or blocked).
    DeviceInactive,
    /// No such request.
    Unknown,
}

/// Records a device's answer once, and only from the request's device while it is active.
/// The guarded UPDATE means that of two answers racing for one request exactly one is
/// recorded; the other sees [`Decided::AlreadyDecided`].
pub async fn decide(
    c: &mut impl Db,
    id: &str,
    app_id: &str,
    answer: &Answer<'_>,
    now: i64,
) -> Result<Decided> {
    let state = if answer.approve {
        RequestState::Approved
    } else {
        RequestState::Denied
    };
    let n = c
        .execute(
            "UPDATE app_requests SET state = $3, decided_at = $4, user_verification = $5, signature = $6 \
             WHERE id = $1 AND app_id = $2 AND state = 'pending' AND expires_at > $4 \
             AND EXISTS (SELECT 1 FROM app_devices d WHERE d.app_id = $2 AND d.state = 'active')",
            &[
                id.into(),
                app_id.into(),
                state.as_str().into(),
                now.into(),
                answer.user_verification.into(),
                answer.signature.into(),
            ],
        )
        .await?;
    if n == 1 {
        return Ok(Decided::Recorded(state));
    }
    // Not recorded: say why, so the device and the audit log get a precise reason.
    let Some(q) = request(c, id).await? else {
        return Ok(Decided::Unknown);
    };
    if q.app_id != app_id {
        return Ok(Decided::WrongDevice);
    }
    let active = by_app_id(c, app_id)
        .await?
        .is_some_and(|d| d.state == AppDeviceState::Active);
    Ok(if !active {
        Decided::DeviceInactive
    } else if q.state != RequestState::Pending {
        Decided::AlreadyDecided(q.state)
    } else {
        Decided::Expired
    })
}

/// Cancels a flow's pending requests (the person cancelled, or the flow moved on); returns
/// the devices that had one, so they can be told.
pub async fn cancel_for_flow(c: &mut impl Db, flow_id: &str, now: i64) -> Result<Vec<String>> {
    c.fetch_all(
        "UPDATE app_requests SET state = 'cancelled', decided_at = $2 \
         WHERE flow_id = $1 AND state = 'pending' RETURNING app_id",
        &[flow_id.into(), now.into()],
        |r| r.text(0),
    )
    .await
}

/// Records that the person asked, from the app, to block their eID (the block itself is
/// carried out by the lifecycle; until then support sees the request).
pub async fn record_block_request(
    c: &mut impl Db,
    id: &str,
    person_id: &str,
    app_request_id: &str,
    now: i64,
) -> Result<()> {
    c.execute(
        "INSERT INTO block_requests (id, person_id, source, app_request_id, created_at, state) \
         VALUES ($1, $2, 'app_denial', $3, $4, 'recorded')",
        &[
            id.into(),
            person_id.into(),
            app_request_id.into(),
            now.into(),
        ],
    )
    .await?;
    Ok(())
}

/// The block requests recorded for a person, oldest first: (source, app request, time).
pub async fn block_requests(
    c: &mut impl Db,
    person_id: &str,
) -> Result<Vec<(String, Option<String>, i64)>> {
    c.fetch_all(
        "SELECT source, app_request_id, created_at FROM block_requests WHERE person_id = $1 \
         ORDER BY created_at, id",
        &[person_id.into()],
        |r| Ok((r.text(0)?, r.opt_text(1)?, r.int(2)?)),
    )
    .await
}

/// How an activation was started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivationMethod {
    /// With the existing eID (code device and password) on the "Activate the app" page.
    Eid,
    /// With two codes, one sent by SMS and one by email; both are needed.
    SmsAndEmail,
    /// Approved by the person's current app; no security period.
    OldDevice,
    /// With a one-time activation code sent by letter (issued by the operator or support).
    Letter,
    /// At the activation of a new eID order, right after its identity check and codes:
    /// no security period (there is no earlier app to take over).
    Order,
}

impl ActivationMethod {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ActivationMethod::Eid => "eid",
            ActivationMethod::SmsAndEmail => "sms_email",
            ActivationMethod::OldDevice => "old_device",
            ActivationMethod::Letter => "letter",
            ActivationMethod::Order => "order",
        }
    }

    /// Whether the activation may complete at once: approved from the old phone, or part
    /// of a new eID's activation. Every other activation waits the security period.
    pub fn skips_security_period(self) -> bool {
        matches!(self, ActivationMethod::OldDevice | ActivationMethod::Order)
    }

    fn parse(s: &str) -> Result<ActivationMethod> {
        Ok(match s {
            "eid" => ActivationMethod::Eid,
            "sms_email" => ActivationMethod::SmsAndEmail,
            "old_device" => ActivationMethod::OldDevice,
            "letter" => ActivationMethod::Letter,
            "order" => ActivationMethod::Order,
            other => return Err(StoreError::Corrupt(format!("activation method {other:?}"))),
        })
    }
}

/// A pending or ended activation.
#[derive(Clone, Debug, Serialize)]
pub struct Activation {
    /// Its id.
    pub id: String,
    /// The person activating.
    pub person_id: String,
    /// How it was started.
    pub method: ActivationMethod,
    /// When (unix seconds).
    pub started_at: i64,
    /// Wrong second codes so far.
    pub failures: i64,
    /// `pending`, `completed` or `cancelled`.
    pub state: String,
    /// The device it activated, once completed.
    pub app_id: Option<String>,
}

/// A new activation: the hashes of its one-time code(s).
#[derive(Clone, Debug)]
pub struct NewActivation<'a> {
    /// Its id.
    pub id: &'a str,
    /// The person activating.
    pub person_id: &'a str,
    /// How it was started.
    pub method: ActivationMethod,
    /// SHA-256 (base64url) of the activation code the app presents.
    pub code_hash: &'a str,
    /// For [`ActivationMethod::SmsAndEmail`]: SHA-256 of the second code.
    pub second_code_hash: Option<&'a str>,
}

const ACTIVATION_COLS: &str = "id, person_id, method, started_at, failures, state, app_id";

fn activation_row(r: &sqlx::any::AnyRow) -> Result<Activation> {
    Ok(Activation {
        id: r.try_get("id")?,
        person_id: r.try_get("person_id")?,
        method: ActivationMethod::parse(&r.try_get::<String, _>("method")?)?,
        started_at: r.try_get("started_at")?,
        failures: r.try_get("failures")?,
        state: r.try_get("state")?,
        app_id: r.try_get("app_id")?,
    })
}

/// Starts an activation; any other pending activation of the person is cancelled, so at
/// most one is pending. Returns how many were cancelled.
pub async fn start_activation(c: &mut impl Db, a: &NewActivation<'_>, now: i64) -> Result<u64> {
    let cancelled = c
        .execute(
            "UPDATE app_activations SET state = 'cancelled', ended_at = $2 WHERE person_id = $1 AND state = 'pending'",
            &[a.person_id.into(), now.into()],
        )
        .await?;
    c.execute(
        "INSERT INTO app_activations (id, person_id, method, code_hash, second_code_hash, started_at, failures, state) \
         VALUES ($1, $2, $3, $4, $5, $6, 0, 'pending')",
        &[
            a.id.into(),
            a.person_id.into(),
            a.method.as_str().into(),
            a.code_hash.into(),
            a.second_code_hash.into(),
            now.into(),
        ],
    )
    .await?;
    Ok(cancelled)
}

/// The person's pending activation, if any (while one is, the password cannot be changed).
pub async fn pending_activation(c: &mut Conn, person_id: &str) -> Result<Option<Activation>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {ACTIVATION_COLS} FROM app_activations WHERE person_id = $1 AND state = 'pending'"
    ));
    let row = sqlx::query(sql).bind(person_id).fetch_optional(c).await?;
    row.as_ref().map(activation_row).transpose()
}

/// An activation by id.
pub async fn activation(c: &mut Conn, id: &str) -> Result<Option<Activation>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {ACTIVATION_COLS} FROM app_activations WHERE id = $1"
    ));
    let row = sqlx::query(sql).bind(id).fetch_optional(c).await?;
    row.as_ref().map(activation_row).transpose()
}

/// Whether an activation code can be used now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeCheck {
    /// Open: complete it with [`complete_activation`] in the same transaction as
    /// [`activate`].
    Ready(String),
    /// In the security period: usable from `opens_at`.
    NotYet {
        /// When it opens (unix seconds).
        opens_at: i64,
    },
    /// The completion window has passed, or the activation was cancelled or used.
    Ended,
    /// The second code (SMS and email) is wrong; `remaining` tries are left.
    WrongSecondCode {
        /// Tries left before the activation is cancelled.
        remaining: i64,
    },
    /// No activation has this code.
    Unknown,
}

/// Checks an activation code (and, for SMS and email, the second code) against the
/// security period and window of `policy`. A wrong second code counts; after
/// `max_failures` the activation is cancelled.
pub async fn check_code(
    c: &mut Conn,
    code_hash: &str,
    second_code_hash: Option<&str>,
    policy: &segl_core::app::ActivationPolicy,
    max_failures: i64,
    now: i64,
) -> Result<CodeCheck> {
    use segl_core::app::{ActivationPhase, activation_phase};
    let row = sqlx::query(
        "SELECT id, person_id, method, started_at, failures, state, app_id, second_code_hash \
         FROM app_activations WHERE code_hash = $1",
    )
    .bind(code_hash)
    .fetch_optional(&mut *c)
    .await?;
    let Some(row) = row else {
        return Ok(CodeCheck::Unknown);
    };
    let a = activation_row(&row)?;
    if a.state != "pending" {
        return Ok(CodeCheck::Ended);
    }
    let from_old = a.method.skips_security_period();
    match activation_phase(policy, a.started_at, now, from_old) {
        ActivationPhase::Waiting { opens_at } => return Ok(CodeCheck::NotYet { opens_at }),
        ActivationPhase::Expired => return Ok(CodeCheck::Ended),
        ActivationPhase::Open { .. } => {}
    }
    let expected: Option<String> = row.try_get("second_code_hash")?;
    if let Some(expected) = expected {
        let given = second_code_hash.unwrap_or_default();
        if !segl_crypto::random::ct_eq(given.as_bytes(), expected.as_bytes()) {
            let failures: i64 = sqlx::query(
                "UPDATE app_activations SET failures = failures + 1, \
                 state = CASE WHEN failures + 1 >= $2 THEN 'cancelled' ELSE state END, \
                 ended_at = CASE WHEN failures + 1 >= $2 THEN $3 ELSE ended_at END \
                 WHERE id = $1 RETURNING failures",
            )
            .bind(&a.id)
            .bind(max_failures)
            .bind(now)
            .fetch_one(c)
            .await?
            .try_get("failures")?;
            return Ok(if failures >= max_failures {
                CodeCheck::Ended
            } else {
                CodeCheck::WrongSecondCode {
                    remaining: max_failures - failures,
                }
            });
        }
    }
    Ok(CodeCheck::Ready(a.id))
}

/// Marks an activation completed by `app_id`; false when it was no longer pending (used
/// twice, or cancelled meanwhile).
pub async fn complete_activation(c: &mut Conn, id: &str, app_id: &str, now: i64) -> Result<bool> {
    let n = sqlx::query(
        "UPDATE app_activations SET state = 'completed', app_id = $2, ended_at = $3 WHERE id = $1 AND state = 'pending'",
    )
    .bind(id)
    .bind(app_id)
    .bind(now)
    .execute(c)
    .await?
    .rows_affected();
    Ok(n == 1)
}
