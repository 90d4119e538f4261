//! The eID's lifecycle: blocking ("sperre"). A block takes effect in one transaction (the
//! person marked blocked, the app deactivated, code devices blocked, sessions ended,
//! tokens revoked, the person told by SMS and email, the audit entry), then revokes the
//! person's certificates, each with a new CRL; OCSP answers `revoked` within seconds.
//! Blocking again finishes what a crash may have left (certificates still valid) and
//! changes nothing else.

use segl_pki::RevocationReason;
use segl_store::audit::{self, Event};
use segl_store::persons::{self, Person};
use segl_store::pki as certs;
use segl_store::{Store, StoreError, apps, devices, grants};
use serde::Serialize;
use serde_json::json;

use crate::ca::Pki;
use crate::error::ApiError;

/// Why an eID is blocked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockReason {
    /// A credential (phone, code device) was lost.
    Lost,
    /// A credential was stolen.
    Stolen,
    /// Someone else used, or tried to use, the eID.
    Fraud,
    /// The holder has died.
    Deceased,
    /// Anything else; support notes the detail elsewhere.
    Other,
}

impl BlockReason {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            BlockReason::Lost => "lost",
            BlockReason::Stolen => "stolen",
            BlockReason::Fraud => "fraud",
            BlockReason::Deceased => "deceased",
            BlockReason::Other => "other",
        }
    }

    /// Parses a stored or typed name.
    pub fn parse(s: &str) -> Option<BlockReason> {
        Some(match s {
            "lost" => BlockReason::Lost,
            "stolen" => BlockReason::Stolen,
            "fraud" => BlockReason::Fraud,
            "deceased" => BlockReason::Deceased,
            "other" => BlockReason::Other,
            _ => return None,
        })
    }

    /// The CRL reason of the certificates it revokes: a key that someone else may hold is
    /// compromised; otherwise the holder no longer has the privilege.
    fn revocation(self) -> RevocationReason {
        match self {
            BlockReason::Lost | BlockReason::Stolen | BlockReason::Fraud => {
                RevocationReason::KeyCompromise
            }
            BlockReason::Deceased => RevocationReason::CessationOfOperation,
            BlockReason::Other => RevocationReason::PrivilegeWithdrawn,
        }
    }
}

/// What a block did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Blocked {
    /// False when the eID was blocked before (this run only finished the revocations).
    pub newly_blocked: bool,
    /// The app deactivated, if one was active.
    pub app_id: Option<String>,
    /// Code devices blocked.
    pub devices: Vec<String>,
    /// Sessions ended.
    pub sessions: u64,
    /// Access and refresh tokens revoked.
    pub tokens: u64,
    /// Certificates revoked (serials).
    pub certificates: Vec<String>,
    /// Messages queued to the person (SMS, email).
    pub notified: Vec<&'static str>,
}

const BLOCKED_TEXT: &str = "segl: Your eID has been blocked. If you did not ask for this, \
     contact your bank or eID issuer at once. To use an eID again you need a new identity check.";

/// Blocks the person's eID. `by` names who did it (a support agent, `self-service`).
pub async fn block(
    store: &Store,
    pki: &Pki,
    person: &Person,
    reason: BlockReason,
    by: &str,
    now: i64,
) -> Result<Blocked, ApiError> {
    let mut done = Blocked::default();
    let mut tx = store.begin().await?;
    if persons::block(&mut tx, &person.id, reason.as_str(), now).await? {
        done.newly_blocked = true;
        if let Some(app) = apps::active_for(&mut tx, &person.id).await?
            && apps::deactivate(&mut tx, &app.app_id, apps::Deactivation::Blocked, now).await?
        {
            done.app_id = Some(app.app_id);
        }
        done.devices = devices::block_for_person(&mut tx, &person.id).await?;
        (done.sessions, done.tokens) = grants::revoke_person(&mut tx, &person.id).await?;
        if crate::notify::sms(&mut tx, store, person, "eid.blocked", BLOCKED_TEXT, now).await? {
            done.notified.push("sms");
        }
        if crate::notify::email(&mut tx, store, person, "eid.blocked", BLOCKED_TEXT, now).await? {
            done.notified.push("email");
        }
        audit::append(
            &mut tx,
            &Event {
                event: "person.blocked",
                subject: Some(&person.id),
                client_id: None,
                data: json!({
                    "reason": reason.as_str(),
                    "by": by,
                    "app_id": done.app_id,
                    "devices": done.devices,
                    "sessions": done.sessions,
                    "tokens": done.tokens,
                }),
            },
            now,
        )
        .await?;
    }
    let valid: Vec<String> = certs::certificates(&mut tx, Some(&person.id))
        .await?
        .into_iter()
        .filter(|c| c.revoked_at.is_none())
        .map(|c| c.serial)
        .collect();
    tx.commit().await.map_err(StoreError::from)?;
    for serial in valid {
        if pki
            .revoke(store, &serial, reason.revocation(), by, now)
            .await?
        {
            done.certificates.push(serial);
        }
    }
    Ok(done)
}
