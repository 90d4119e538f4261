//! Email over SMTP with `lettre` (tokio, rustls with aws-lc-rs). The subject comes from the
//! message kind ([`super::subject`]); the Message-ID carries the outbox id, so a delivery
//! can be traced in the mail server's logs. The server's reply to the message (`queued as
//! …`) is kept as the provider id.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message as Email};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use segl_store::outbox::Message;

use super::{Accepted, SendError};

/// How the connection to the SMTP server is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SmtpTls {
    /// Plain SMTP: only to a server on this host (checked at start).
    None,
    /// STARTTLS, required (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

impl SmtpTls {
    /// Parses `none`, `starttls` or `tls`.
    pub fn parse(s: &str) -> Option<SmtpTls> {
        Some(match s {
            "none" => SmtpTls::None,
            "starttls" => SmtpTls::StartTls,
            "tls" => SmtpTls::Tls,
            _ => return None,
        })
    }
}

/// `[notify.smtp]`, parsed.
#[derive(Clone, Debug)]
pub struct SmtpSettings {
    /// Server host name (the TLS name too).
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Connection protection.
    pub tls: SmtpTls,
    /// User name and password, if the server wants a login.
    pub credentials: Option<(String, String)>,
    /// The From address.
    pub from: Mailbox,
    /// Timeout of each SMTP command.
    pub timeout: Duration,
}

/// Parses a From address (`segl <noreply@example.no>` or `noreply@example.no`).
pub fn parse_mailbox(s: &str) -> Result<Mailbox, String> {
    s.parse::<Mailbox>()
        .map_err(|e| format!("'{s}' is not an email address: {e}"))
}

/// An SMTP connection pool to one server.
pub struct SmtpTransport {
    mailer: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpTransport {
    /// Builds the transport; connects at the first message.
    pub fn new(s: SmtpSettings) -> Result<SmtpTransport, String> {
        let builder = match s.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host),
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host)
                .map_err(|e| format!("notify.smtp: {e}"))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&s.host)
                .map_err(|e| format!("notify.smtp: {e}"))?,
        };
        let mut builder = builder.port(s.port).timeout(Some(s.timeout));
        if let Some((user, password)) = s.credentials {
            builder = builder.credentials(Credentials::new(user, password));
        }
        Ok(SmtpTransport {
            mailer: builder.build(),
            from: s.from,
        })
    }

    /// Sends one email.
    pub async fn send(&self, m: &Message) -> Result<Accepted, SendError> {
        let to: Mailbox = m.recipient.parse().map_err(|_| {
            SendError::Permanent("smtp: the recipient is not a valid email address".into())
        })?;
        let domain = self.from.email.domain();
        let email = Email::builder()
            .from(self.from.clone())
            .to(to)
            .subject(super::subject(&m.kind))
            .message_id(Some(format!("<{}@{domain}>", m.id)))
            .header(ContentType::TEXT_PLAIN)
            .body(m.body.clone())
            .map_err(|e| SendError::Permanent(format!("smtp: cannot build the message: {e}")))?;
        let reply = self.mailer.send(email).await.map_err(classify)?;
        let text: Vec<&str> = reply.message().collect();
        Ok(Accepted {
            provider_id: provider_id(&text.join(" ")),
        })
    }
}

/// The server's id for the message from its reply: `queued as X` (Postfix, aiosmtpd),
/// `id=X` (Exim), else the whole reply if it names no address; at most 200 characters.
fn provider_id(reply: &str) -> Option<String> {
    let reply = reply.trim();
    let id = if let Some((_, rest)) = reply.split_once("queued as ") {
        rest.split_whitespace().next().unwrap_or_default()
    } else if let Some((_, rest)) = reply.split_once("id=") {
        rest.split_whitespace().next().unwrap_or_default()
    } else if !reply.contains('@') {
        reply
    } else {
        ""
    };
    (!id.is_empty()).then(|| id.chars().take(200).collect())
}

/// A short error without the server's text (it may quote the recipient): the reply code,
/// or what failed.
fn classify(e: lettre::transport::smtp::Error) -> SendError {
    if let Some(code) = e.status() {
        return if e.is_permanent() {
            SendError::Permanent(format!("smtp: refused with {code}"))
        } else {
            SendError::Retry(format!("smtp: temporary failure {code}"))
        };
    }
    if e.is_timeout() {
        return SendError::Retry("smtp: timeout".into());
    }
    if e.is_tls() {
        return SendError::Retry("smtp: TLS failed".into());
    }
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return SendError::Retry(format!("smtp: connection failed ({})", io.kind()));
        }
        source = s.source();
    }
    SendError::Retry("smtp: connection failed".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_ids_from_replies() {
        assert_eq!(
            provider_id("2.0.0 Ok: queued as 4ABC123").as_deref(),
            Some("4ABC123")
        );
        assert_eq!(
            provider_id("OK id=1qXYZ-000abc-12").as_deref(),
            Some("1qXYZ-000abc-12")
        );
        assert_eq!(provider_id("2.0.0 <kari@example.no> accepted"), None);
        assert_eq!(provider_id(""), None);
    }

    #[test]
    fn tls_modes() {
        assert_eq!(SmtpTls::parse("starttls"), Some(SmtpTls::StartTls));
        assert_eq!(SmtpTls::parse("ssl"), None);
        assert!(parse_mailbox("segl <noreply@example.no>").is_ok());
        assert!(parse_mailbox("not an address").is_err());
    }
}
