//! Messages to people: the texts, queueing them in the outbox (`segl_store::outbox`), and
//! the worker that delivers the outbox through a transport per channel.
//!
//! - [`file`]: development and tests, each SMS or email a JSON file.
//! - [`smtp`]: email over SMTP (`lettre`, rustls).
//! - [`sms_gateway`]: SMS through a generic HTTP gateway (POST JSON `{to, from, text}`).
//! - [`letter`]: letters as one-page PDFs in a print folder.
//!
//! A transport answers [`Accepted`] or a [`SendError`] that says whether trying again can
//! help. The worker records the outcome (`sent` with the transport's id, or the attempt and
//! a short error), retries with exponential backoff and gives up after
//! [`Retry::max_attempts`]. Nothing personal (numbers, addresses, bodies) goes into a log
//! line or a stored error: errors name the transport and a status, never the recipient.

pub mod file;
pub mod letter;
pub mod sms_gateway;
pub mod smtp;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use segl_store::outbox::{self, Message, NewMessage};
use segl_store::persons::Person;
use segl_store::{Store, db::Db};

use crate::error::ApiError;

/// How long one node holds a claimed message. Every transport gives up well within it
/// ([`SEND_DEADLINE`]), so a message is never sent by two nodes; a node that dies
/// mid-delivery lets it run out and the message is tried again.
const LEASE_SECS: i64 = 120;

/// The longest one delivery attempt may take, whatever the transport's own timeouts.
const SEND_DEADLINE: Duration = Duration::from_secs(60);

/// The longest pause between two attempts.
const MAX_BACKOFF_SECS: i64 = 3600;

/// Messages delivered at the same time by one node.
const PARALLEL: usize = 8;

/// A transport took the message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Accepted {
    /// The transport's id of the message (SMTP reply, gateway id), if it gave one.
    pub provider_id: Option<String>,
}

/// A delivery attempt failed. The text is stored and shown to support: short, and free of
/// personal data.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// Worth trying again later (timeout, connection, 5xx, SMTP 4xx).
    #[error("{0}")]
    Retry(String),
    /// Trying again cannot help (refused recipient, bad request, no transport).
    #[error("{0}")]
    Permanent(String),
}

/// When to try again and when to give up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// Attempts before a message is given up (`failed`).
    pub max_attempts: i64,
    /// The first pause; each further one doubles, up to an hour.
    pub backoff_base_secs: i64,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            max_attempts: 8,
            backoff_base_secs: 5,
        }
    }
}

impl Retry {
    /// When to try again after attempt number `attempt` (1-based) failed at `now`, or
    /// `None` to give up.
    pub fn next(&self, attempt: i64, now: i64) -> Option<i64> {
        if attempt >= self.max_attempts {
            return None;
        }
        let factor = 1i64 << (attempt - 1).clamp(0, 20);
        Some(
            now + self
                .backoff_base_secs
                .saturating_mul(factor)
                .min(MAX_BACKOFF_SECS),
        )
    }
}

/// Which transport carries email.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum EmailVia {
    /// JSON files in [`Settings::file_dir`].
    File,
    /// An SMTP server.
    Smtp(smtp::SmtpSettings),
}

/// Which transport carries SMS.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum SmsVia {
    /// JSON files in [`Settings::file_dir`].
    File,
    /// An HTTP SMS gateway.
    Http(sms_gateway::GatewaySettings),
}

/// The parsed `[notify]` configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Email transport.
    pub email: EmailVia,
    /// SMS transport.
    pub sms: SmsVia,
    /// Where the file transport writes.
    pub file_dir: PathBuf,
    /// Where letters (PDF) are written for printing.
    pub print_dir: PathBuf,
    /// Retries.
    pub retry: Retry,
}

/// One transport.
enum Transport {
    File(file::FileTransport),
    Smtp(Box<smtp::SmtpTransport>),
    Gateway(sms_gateway::SmsGateway),
    Letter(letter::PrintFolder),
}

impl Transport {
    async fn send(&self, m: &Message, now: i64) -> Result<Accepted, SendError> {
        match self {
            Transport::File(t) => t.send(m).await,
            Transport::Smtp(t) => t.send(m).await,
            Transport::Gateway(t) => t.send(m).await,
            Transport::Letter(t) => t.send(m, now).await,
        }
    }
}

/// The transports of the three channels, and the retry policy: what the worker delivers
/// with.
pub struct Notifier {
    email: Transport,
    sms: Transport,
    letter: Transport,
    retry: Retry,
}

impl Notifier {
    /// Builds the transports (no connection is made yet).
    pub fn new(s: Settings) -> Result<Notifier, String> {
        let file = || Transport::File(file::FileTransport::new(s.file_dir.clone()));
        Ok(Notifier {
            email: match s.email {
                EmailVia::File => file(),
                EmailVia::Smtp(cfg) => Transport::Smtp(Box::new(smtp::SmtpTransport::new(cfg)?)),
            },
            sms: match s.sms {
                SmsVia::File => file(),
                SmsVia::Http(cfg) => Transport::Gateway(sms_gateway::SmsGateway::new(cfg)?),
            },
            letter: Transport::Letter(letter::PrintFolder::new(s.print_dir.clone())),
            retry: s.retry,
        })
    }

    /// Delivers one message through its channel's transport, within [`SEND_DEADLINE`].
    pub async fn send(&self, m: &Message, now: i64) -> Result<Accepted, SendError> {
        let t = match m.channel.as_str() {
            "email" => &self.email,
            "sms" => &self.sms,
            "letter" => &self.letter,
            other => {
                return Err(SendError::Permanent(format!(
                    "no transport for channel '{other}'"
                )));
            }
        };
        tokio::time::timeout(SEND_DEADLINE, t.send(m, now))
            .await
            .unwrap_or_else(|_| Err(SendError::Retry("delivery timed out".into())))
    }
}

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

/// Queues a letter to a postal address (lines separated by `\n`, checked by
/// [`letter::parse_address`]); returns the message id.
pub async fn letter(
    c: &mut impl Db,
    store: &Store,
    person: &Person,
    address: &str,
    kind: &str,
    body: &str,
    now: i64,
) -> Result<String, ApiError> {
    Ok(outbox::enqueue(
        c,
        store.seal(),
        &NewMessage {
            person_id: Some(&person.id),
            channel: "letter",
            recipient: address,
            kind,
            body,
        },
        now,
    )
    .await?)
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

/// An email's subject for a message kind (Norwegian, as the bodies).
pub fn subject(kind: &str) -> &'static str {
    match kind {
        "eid.blocked" => "Din eID er sperret",
        "app.activation_started" => "Aktivering av segl-appen er startet",
        "app.activated" => "segl-appen er aktivert",
        "app.activation_code" | "app.activation_second_code" | "app.activation_letter" => {
            "Aktiveringskode for segl-appen"
        }
        _ => "Melding fra segl",
    }
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

/// The letter carrying an app activation code (`segl person activation-code --letter-to`).
pub fn activation_letter_text(code: &str, opens_at: &str, expires_at: &str) -> String {
    format!(
        "Aktivering av segl-appen er startet for deg. Aktiveringskoden din er:\n\n{code}\n\n\
         Koden kan brukes én gang, fra {opens_at} til {expires_at} (UTC). Skriv den inn i \
         segl-appen på den nye telefonen.\n\nHar du ikke bedt om dette? Kontakt kundeservice \
         straks, så stopper vi aktiveringen."
    )
}

/// Starts the delivery worker: every half second it claims the due messages, delivers
/// them (up to [`PARALLEL`] at a time) and records the outcome.
pub fn spawn_worker(store: Store, notifier: Notifier, now: fn() -> i64) {
    let notifier = Arc::new(notifier);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            if let Err(e) = deliver_due(&store, &notifier, now).await {
                tracing::warn!(error = %e, "outbox: delivery round failed");
            }
        }
    });
}

/// One round: every message due now, each claimed before it is sent.
pub async fn deliver_due(
    store: &Store,
    notifier: &Notifier,
    now: fn() -> i64,
) -> Result<(), ApiError> {
    let mut c = store.conn().await?;
    let due = outbox::due(&mut c, store.seal(), now(), 100).await?;
    drop(c);
    let results: Vec<Result<(), ApiError>> = futures_util::stream::iter(due)
        .map(|m| deliver_one(store, notifier, m, now))
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    results.into_iter().collect()
}

async fn deliver_one(
    store: &Store,
    notifier: &Notifier,
    m: Message,
    now: fn() -> i64,
) -> Result<(), ApiError> {
    // Every node runs a worker: only the one that claims a message sends it.
    if !outbox::claim(&mut *store.conn().await?, &m.id, now(), LEASE_SECS).await? {
        return Ok(());
    }
    let outcome = notifier.send(&m, now()).await;
    let t = now();
    let attempt = m.attempts + 1;
    let mut c = store.conn().await?;
    match outcome {
        Ok(accepted) => {
            outbox::sent(&mut c, &m.id, t, accepted.provider_id.as_deref()).await?;
            tracing::info!(id = %m.id, channel = %m.channel, kind = %m.kind, attempt, "outbox: sent");
        }
        Err(e) => {
            let retry = match &e {
                SendError::Retry(_) => notifier.retry.next(attempt, t),
                SendError::Permanent(_) => None,
            };
            let error = e.to_string();
            outbox::failed(&mut c, &m.id, &error, t, retry).await?;
            match retry {
                Some(at) => tracing::warn!(
                    id = %m.id, channel = %m.channel, attempt, error, retry_in_secs = at - t,
                    "outbox: delivery failed, will retry"
                ),
                None => tracing::warn!(
                    id = %m.id, channel = %m.channel, attempt, error,
                    "outbox: delivery failed, given up"
                ),
            }
        }
    }
    Ok(())
}

/// Writes `bytes` as `dir/name`, readable by the owner only, through a temporary file that
/// is synced and renamed, so a reader never sees half a file. The directory is created
/// (0700) when missing.
fn write_private(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))
}

/// A short error for an I/O failure writing a file: its kind, never a path or content.
fn io_error(what: &str, e: &std::io::Error) -> SendError {
    SendError::Retry(format!("{what}: {}", e.kind()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_gives_up() {
        let r = Retry {
            max_attempts: 4,
            backoff_base_secs: 3,
        };
        assert_eq!(r.next(1, 100), Some(103));
        assert_eq!(r.next(2, 100), Some(106));
        assert_eq!(r.next(3, 100), Some(112));
        assert_eq!(r.next(4, 100), None);
        let r = Retry {
            max_attempts: 50,
            backoff_base_secs: 3600,
        };
        assert_eq!(r.next(30, 0), Some(MAX_BACKOFF_SECS));
    }

    #[test]
    fn subjects() {
        assert_eq!(subject("eid.blocked"), "Din eID er sperret");
        assert_eq!(subject("something.new"), "Melding fra segl");
    }
}
