//! Signing orders: the rules a relying party's order must meet and the states it moves
//! through. The server parses the documents (base64, PDF structure) and signs; this module
//! decides what is acceptable and what the order's state is at a given time.

use serde::{Deserialize, Serialize};

/// Limits of the signing API (`[sign]` in `segl.toml`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignPolicy {
    /// How long a person has to sign, from the order's creation, seconds.
    pub order_ttl_secs: i64,
    /// Largest PDF, bytes (decoded).
    pub max_document_bytes: usize,
    /// Most documents in one order.
    pub max_documents: usize,
    /// Longest text shown to the person, characters.
    pub max_text_chars: usize,
    /// How long an ended order's results are kept for the relying party, seconds.
    pub retention_secs: i64,
}

impl Default for SignPolicy {
    fn default() -> Self {
        SignPolicy {
            order_ttl_secs: 900,
            max_document_bytes: 10 * 1024 * 1024,
            max_documents: 20,
            max_text_chars: 4000,
            retention_secs: 7 * 86400,
        }
    }
}

impl SignPolicy {
    /// Checks the ranges; the message names the key under `[sign]`.
    pub fn validate(&self) -> Result<(), String> {
        if !(10..=7 * 86400).contains(&self.order_ttl_secs) {
            return Err("sign.order_ttl_secs must be between 10 and 604800".into());
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.max_document_bytes) {
            return Err("sign.max_document_bytes must be between 1024 and 67108864".into());
        }
        if !(1..=100).contains(&self.max_documents) {
            return Err("sign.max_documents must be between 1 and 100".into());
        }
        if !(1..=100_000).contains(&self.max_text_chars) {
            return Err("sign.max_text_chars must be between 1 and 100000".into());
        }
        if !(60..=366 * 86400).contains(&self.retention_secs) {
            return Err("sign.retention_secs must be between 60 and 31622400".into());
        }
        Ok(())
    }

    /// The largest request body the order endpoint reads: every PDF at its limit in
    /// base64, twice over, and room for the rest. Larger bodies are refused unread.
    pub fn max_body_bytes(&self) -> usize {
        self.max_document_bytes
            .saturating_mul(8)
            .div_ceil(3)
            .saturating_add(1024 * 1024)
    }
}

/// An order refused; each names the field at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignError {
    /// The text is empty or too long.
    #[error("{0}")]
    InvalidText(String),
    /// The document list or a document's name is wrong.
    #[error("{0}")]
    InvalidDocuments(String),
    /// A digest is not 32 bytes in hex.
    #[error("{0}")]
    InvalidDigest(String),
}

/// Checks the text the person will see.
pub fn check_text(text: &str, policy: &SignPolicy) -> Result<(), SignError> {
    let chars = text.chars().count();
    if text.trim().is_empty() {
        return Err(SignError::InvalidText("the text to sign is empty".into()));
    }
    if chars > policy.max_text_chars {
        return Err(SignError::InvalidText(format!(
            "the text to sign has {chars} characters; at most {} are allowed",
            policy.max_text_chars
        )));
    }
    // Line breaks and tabs are fine; other control characters would hide text.
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(SignError::InvalidText(
            "the text to sign contains control characters".into(),
        ));
    }
    Ok(())
}

/// Checks the documents' names: 1 to `max_documents` of them, each 1–200 printable
/// characters, no two alike.
pub fn check_names<'a>(
    names: impl ExactSizeIterator<Item = &'a str>,
    policy: &SignPolicy,
) -> Result<(), SignError> {
    let n = names.len();
    if n == 0 {
        return Err(SignError::InvalidDocuments(
            "an order needs at least one document".into(),
        ));
    }
    if n > policy.max_documents {
        return Err(SignError::InvalidDocuments(format!(
            "{n} documents; at most {} are allowed in one order",
            policy.max_documents
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, name) in names.enumerate() {
        let len = name.chars().count();
        if name.trim().is_empty() || len > 200 {
            return Err(SignError::InvalidDocuments(format!(
                "document {i}: the name must have 1 to 200 characters"
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(SignError::InvalidDocuments(format!(
                "document {i}: the name contains control characters"
            )));
        }
        if !seen.insert(name) {
            return Err(SignError::InvalidDocuments(format!(
                "two documents are named '{name}'"
            )));
        }
    }
    Ok(())
}

/// A SHA-256 digest in hex (either case).
pub fn parse_digest(name: &str, hex: &str) -> Result<[u8; 32], SignError> {
    let bad = |why: String| SignError::InvalidDigest(format!("document '{name}': {why}"));
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("sha256 must be hexadecimal".into()));
    }
    if hex.len() != 64 {
        return Err(bad(format!(
            "sha256 must be 32 bytes (64 hex digits), not {} digits",
            hex.len()
        )));
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| bad("sha256 must be hexadecimal".into()))?;
    }
    Ok(out)
}

/// Where an order stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// Waiting for the person.
    Pending,
    /// The person approved; the signatures are being made.
    Approved,
    /// Done: the results are there.
    Signed,
    /// Ended without signatures; see the error.
    Failed,
    /// The relying party withdrew it.
    Cancelled,
    /// Nobody signed in time.
    Expired,
}

impl OrderState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Pending => "pending",
            OrderState::Approved => "approved",
            OrderState::Signed => "signed",
            OrderState::Failed => "failed",
            OrderState::Cancelled => "cancelled",
            OrderState::Expired => "expired",
        }
    }

    /// The state of a stored order at `now`: a pending order past its expiry has expired
    /// (nothing needs to write that down; every step checks the time).
    pub fn at(stored: &str, expires_at: i64, now: i64) -> Option<OrderState> {
        let s = match stored {
            "pending" if now >= expires_at => OrderState::Expired,
            "pending" => OrderState::Pending,
            "approved" => OrderState::Approved,
            "signed" => OrderState::Signed,
            "failed" => OrderState::Failed,
            "cancelled" => OrderState::Cancelled,
            _ => return None,
        };
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_checked() {
        let p = SignPolicy {
            max_text_chars: 5,
            ..SignPolicy::default()
        };
        assert!(check_text("hei", &p).is_ok());
        assert!(check_text("æøåæø", &p).is_ok(), "characters, not bytes");
        assert!(matches!(
            check_text("  ", &p),
            Err(SignError::InvalidText(_))
        ));
        assert!(
            matches!(check_text("hei du", &p), Err(SignError::InvalidText(m)) if m.contains("6 characters"))
        );
        assert!(check_text("a\u{202e}b", &SignPolicy::default()).is_ok());
        assert!(matches!(
            check_text("a\u{7}b", &SignPolicy::default()),
            Err(SignError::InvalidText(_))
        ));
    }

    #[test]
    fn names_are_checked() {
        let p = SignPolicy {
            max_documents: 2,
            ..SignPolicy::default()
        };
        assert!(check_names(["a.pdf", "b.txt"].into_iter(), &p).is_ok());
        let err = |names: &[&str]| {
            check_names(names.iter().copied(), &p)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(err(&[]), "an order needs at least one document");
        assert!(err(&["a", "b", "c"]).contains("at most 2"));
        assert_eq!(err(&["a", "a"]), "two documents are named 'a'");
        assert!(err(&[""]).contains("1 to 200"));
        assert!(err(&["a\nb"]).contains("control"));
    }

    #[test]
    fn digests_are_32_bytes_of_hex() {
        let hex = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
        assert_eq!(parse_digest("x", hex).unwrap()[0], 0xe3);
        let e = parse_digest("x", &hex[..62]).unwrap_err().to_string();
        assert_eq!(
            e,
            "document 'x': sha256 must be 32 bytes (64 hex digits), not 62 digits"
        );
        assert!(parse_digest("x", &format!("{}zz", &hex[..62])).is_err());
        assert!(parse_digest("x", "é").is_err());
    }

    #[test]
    fn a_pending_order_expires_with_time() {
        assert_eq!(
            OrderState::at("pending", 100, 99),
            Some(OrderState::Pending)
        );
        assert_eq!(
            OrderState::at("pending", 100, 100),
            Some(OrderState::Expired)
        );
        assert_eq!(OrderState::at("signed", 100, 200), Some(OrderState::Signed));
        assert_eq!(OrderState::at("bogus", 100, 0), None);
    }

    #[test]
    fn limits_are_validated() {
        assert!(SignPolicy::default().validate().is_ok());
        let bad = SignPolicy {
            max_documents: 0,
            ..SignPolicy::default()
        };
        assert!(bad.validate().unwrap_err().contains("max_documents"));
        assert!(SignPolicy::default().max_body_bytes() > 2 * 4 * (10 << 20) / 3);
    }
}
