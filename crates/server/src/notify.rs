//! Messages to people: the texts, and the worker that delivers the outbox
//! (`segl_store::outbox`). The transport here is the file transport for development and
//! tests: each message becomes a JSON file (owner-only: it may hold a code) in the outbox
//! directory, where a test or a developer reads it. SMTP and an SMS gateway come with the
//! lifecycle work; they plug in where [`deliver_file`] is called.

use std::path::{Path, PathBuf};
use std::time::Duration;

use segl_store::outbox::{self, NewMessage};
use segl_store::persons::Person;
use segl_store::{Store, db::Db};

use crate::error::ApiError;

/// Gives up on a message after this many attempts.
const MAX_ATTEMPTS: i64 = 8;

/// Queues an SMS to the person's registered phone (nothing without one). Returns whether
/// one was queued.
pub async fn sms(
    c: &mut impl Db,
    store: &Store,
    person: &Person,
    kind: &str,
    body: &str,
    now: i64,
) -> Result<bool, ApiError> {
    queue(
        c,
        store,
        person,
        "sms",
        person.phone.as_deref(),
        kind,
        body,
        now,
    )
    .await
}

/// Queues an email to the person's registered address (nothing without one).
pub async fn email(
    c: &mut impl Db,
    store: &Store,
    person: &Person,
    kind: &str,
    body: &str,
    now: i64,
) -> Result<bool, ApiError> {
    queue(
        c,
        store,
        person,
        "email",
        person.email.as_deref(),
        kind,
        body,
        now,
    )
    .await
}

#[allow(clippy::too_many_arguments)] // the two callers above name what each one is
async fn queue(
    c: &mut impl Db,
    store: &Store,
    person: &Person,
    channel: &str,
    recipient: Option<&str>,
    kind: &str,
    body: &str,
    now: i64,
) -> Result<bool, ApiError> {
    let Some(recipient) = recipient else {
        return Ok(false);
    };
    outbox::enqueue(
        c,
        store.seal(),
        &NewMessage {
            person_id: Some(&person.id),
            channel,
            recipient,
            kind,
            body,
        },
        now,
    )
    .await?;
    Ok(true)
}

/// The SMS telling the owner that an activation of the app started (by `how`), and what to
/// do if it was not them.
pub fn activation_started_text(how: &str, opens_at: Option<&str>) -> String {
    let when = opens_at
        .map(|t| format!(" Den kan fullføres fra {t} (UTC)."))
        .unwrap_or_default();
    format!(
        "segl: Aktivering av segl-appen på en ny telefon er startet ({how}).{when} \
         Var det ikke deg? Kontakt kundeservice straks, så stopper vi den."
    )
}

/// The SMS telling the owner that the app was activated on a new device.
pub fn activation_completed_text(label: Option<&str>) -> String {
    let device = label.map(|l| format!(" («{l}»)")).unwrap_or_default();
    format!(
        "segl: segl-appen er nå aktivert på en ny telefon{device}. En eventuell tidligere app er \
         deaktivert. Var det ikke deg? Kontakt kundeservice straks."
    )
}

/// Starts the delivery worker for the file transport: every half second it writes the
/// due messages to `dir` and records them as sent; a failure is retried with exponential
/// backoff and given up after [`MAX_ATTEMPTS`].
pub fn spawn_file_worker(store: Store, dir: PathBuf, now: fn() -> i64) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            if let Err(e) = deliver_due(&store, &dir, now()).await {
                tracing::warn!(error = %e, "outbox: delivery round failed");
            }
        }
    });
}

async fn deliver_due(store: &Store, dir: &Path, now: i64) -> Result<(), ApiError> {
    let mut c = store.conn().await?;
    let due = outbox::due(&mut c, store.seal(), now, 100).await?;
    drop(c);
    for m in due {
        // Every node runs a worker: only the one that claims a message sends it.
        if !outbox::claim(&mut *store.conn().await?, &m.id, now, 60).await? {
            continue;
        }
        let outcome = deliver_file(dir, &m);
        let mut c = store.conn().await?;
        match outcome {
            Ok(()) => outbox::sent(&mut c, &m.id, now).await?,
            Err(e) => {
                let retry =
                    (m.attempts + 1 < MAX_ATTEMPTS).then(|| now + (1 << m.attempts.min(10)));
                tracing::warn!(id = %m.id, error = %e, "outbox: delivery failed");
                outbox::failed(&mut c, &m.id, &e.to_string(), retry).await?;
            }
        }
    }
    Ok(())
}

/// Writes one message as `{dir}/{id}.json`, readable by the owner only.
fn deliver_file(dir: &Path, m: &outbox::Message) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let json = serde_json::json!({
        "id": m.id,
        "channel": m.channel,
        "to": m.recipient,
        "kind": m.kind,
        "body": m.body,
        "created_at": m.created_at,
    });
    let tmp = dir.join(format!(".{}.tmp", m.id));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(json.to_string().as_bytes())?;
    f.sync_all()?;
    // Renamed into place, so a reader never sees half a message.
    std::fs::rename(&tmp, dir.join(format!("{}.json", m.id)))
}
