//! `segl outbox …`: what support needs about messages to people. `list` shows each
//! message's delivery state (queued, sent, failed), attempts, last error and when it was
//! sent, with the recipient masked in text output; never a body (it may hold a code).
//! `resend` queues a copy of a message, audited as `outbox.resent` with the agent.

use std::process::ExitCode;

use clap::Subcommand;
use segl_store::audit::{self, Event};
use segl_store::outbox::{self, Message};
use serde_json::json;

use crate::commands::{open, parse_nin, person_by_nin, print_json};
use crate::{CliError, Global};

/// `segl outbox …`
#[derive(Subcommand, Debug)]
pub enum OutboxCmd {
    /// List messages, newest first: state, attempts, last error, when sent.
    List {
        /// Only this person's messages.
        #[arg(long)]
        nin: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Queue a copy of a message (same person, channel, recipient, kind and text) under a
    /// new id; refused while the original is still queued.
    Resend {
        /// The message's id (from `segl outbox list`).
        id: String,
        /// Who resends, for the audit log (a support agent's name or id).
        #[arg(long, default_value = "cli")]
        by: String,
    },
}

/// `segl outbox …`
pub async fn outbox(g: &Global, cmd: OutboxCmd) -> Result<ExitCode, CliError> {
    match cmd {
        OutboxCmd::List { nin, limit } => list(g, nin, limit).await,
        OutboxCmd::Resend { id, by } => resend(g, &id, &by).await,
    }
}

async fn list(g: &Global, nin: Option<String>, limit: i64) -> Result<ExitCode, CliError> {
    // Input first: nothing is opened for a bad one.
    let nin = nin.as_deref().map(parse_nin).transpose()?;
    if !(1..=10_000).contains(&limit) {
        return Err(CliError::Input(
            "--limit must be between 1 and 10000".into(),
        ));
    }
    let o = open(g).await?;
    let mut c = o.store.conn().await?;
    let person = match &nin {
        Some(n) => Some(person_by_nin(&mut c, n).await?.id),
        None => None,
    };
    let msgs = outbox::list(&mut c, o.store.seal(), person.as_deref(), limit).await?;
    if g.json {
        print_json(&json!(msgs.iter().map(to_json).collect::<Vec<_>>()));
        return Ok(ExitCode::SUCCESS);
    }
    if msgs.is_empty() {
        println!("no messages");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<36}  {:<20}  {:<6}  {:<26}  {:<20}  {:<6}  {:>8}  {:<20}  last error",
        "id", "created (UTC)", "via", "kind", "to", "state", "attempts", "sent (UTC)"
    );
    for m in &msgs {
        println!(
            "{:<36}  {:<20}  {:<6}  {:<26}  {:<20}  {:<6}  {:>8}  {:<20}  {}",
            m.id,
            segl_server::flow::rfc3339(m.created_at),
            m.channel,
            m.kind,
            mask(&m.channel, &m.recipient),
            m.state,
            m.attempts,
            m.sent_at
                .map(segl_server::flow::rfc3339)
                .unwrap_or_default(),
            m.last_error.as_deref().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A message as `--json` shows it: everything but the body.
fn to_json(m: &Message) -> serde_json::Value {
    json!({
        "id": m.id,
        "person_id": m.person_id,
        "channel": m.channel,
        "recipient": m.recipient,
        "kind": m.kind,
        "state": m.state,
        "attempts": m.attempts,
        "last_error": m.last_error,
        "created_at": m.created_at,
        "sent_at": m.sent_at,
        "last_attempt_at": m.last_attempt_at,
        "next_at": (m.state == "queued").then_some(m.next_at),
        "provider_id": m.provider_id,
        "resent_from": m.resent_from,
    })
}

/// A recipient as text output shows it: a phone number's last three digits, an email's
/// domain, a postal address's last line (postal code and place).
fn mask(channel: &str, recipient: &str) -> String {
    match channel {
        "sms" => {
            let digits = recipient.chars().filter(char::is_ascii_digit).count();
            let mut seen = 0;
            recipient
                .chars()
                .map(|c| {
                    if c.is_ascii_digit() {
                        seen += 1;
                        if seen + 3 <= digits { '*' } else { c }
                    } else {
                        c
                    }
                })
                .collect()
        }
        "email" => match recipient.rsplit_once('@') {
            Some((_, domain)) => format!("***@{domain}"),
            None => "***".into(),
        },
        "letter" => format!("… {}", recipient.lines().last().unwrap_or_default()),
        _ => "***".into(),
    }
}

async fn resend(g: &Global, id: &str, by: &str) -> Result<ExitCode, CliError> {
    let id = uuid::Uuid::parse_str(id)
        .map_err(|_| CliError::Input(format!("'{id}' is not an outbox message id (a UUID)")))?
        .to_string();
    let by = by.trim();
    if by.is_empty() || by.chars().count() > 100 || by.chars().any(char::is_control) {
        return Err(CliError::Input(
            "--by must be 1 to 100 printable characters".into(),
        ));
    }
    let o = open(g).await?;
    let now = segl_server::system_now();
    let mut tx = o.store.begin().await?;
    let m = outbox::get(&mut tx, o.store.seal(), &id)
        .await?
        .ok_or_else(|| CliError::Input(format!("no outbox message with id {id}")))?;
    if m.state == "queued" {
        return Err(CliError::Input(format!(
            "message {id} is still queued ({} attempts so far, next at {} UTC); nothing resent",
            m.attempts,
            segl_server::flow::rfc3339(m.next_at)
        )));
    }
    let new_id = outbox::resend(&mut tx, o.store.seal(), &id, now).await?;
    audit::append(
        &mut tx,
        &Event {
            event: "outbox.resent",
            subject: m.person_id.as_deref(),
            client_id: None,
            data: json!({
                "by": by,
                "message": id,
                "resend": new_id,
                "channel": m.channel,
                "kind": m.kind,
            }),
        },
        now,
    )
    .await?;
    tx.commit()
        .await
        .map_err(|e| CliError::Failure(e.to_string()))?;
    if g.json {
        print_json(&json!({"id": new_id, "resent_from": id, "state": "queued"}));
    } else {
        println!("message {id} queued again as {new_id}; a running `segl serve` delivers it");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::mask;

    #[test]
    fn recipients_are_masked() {
        assert_eq!(mask("sms", "+4791234567"), "+*******567");
        assert_eq!(mask("email", "kari@example.no"), "***@example.no");
        assert_eq!(
            mask("letter", "Kari Nordmann\nStorgata 1\n0150 Oslo"),
            "… 0150 Oslo"
        );
        assert_eq!(mask("fax", "123"), "***");
    }
}
