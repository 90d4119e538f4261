//! Email addresses as people type them: the common, unquoted form of RFC 5322 with an
//! ASCII domain. One rule for every form that takes an address (an order, My page).

/// Why an email address was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmailError {
    /// Nothing was typed.
    Empty,
    /// Longer than 254 characters (RFC 5321).
    TooLong,
    /// Not exactly one `@` with something on each side.
    At,
    /// The part before `@` is longer than 64 characters or has a character that is not
    /// allowed there.
    Local,
    /// The domain is not names of letters, digits and hyphens joined by dots, ending in a
    /// top-level domain of letters.
    Domain,
    /// A space or another character no address has.
    Characters,
}

/// Checks an email address's syntax (the common, unquoted form of RFC 5322 with an ASCII
/// domain) and lower-cases its domain.
pub fn parse_email(s: &str) -> Result<String, EmailError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(EmailError::Empty);
    }
    if s.chars().count() > 254 {
        return Err(EmailError::TooLong);
    }
    if s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || !c.is_ascii())
    {
        return Err(EmailError::Characters);
    }
    let mut parts = s.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(EmailError::At);
    };
    if local.is_empty() || domain.is_empty() {
        return Err(EmailError::At);
    }
    let local_ok = local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b));
    if !local_ok {
        return Err(EmailError::Local);
    }
    let domain = domain.to_ascii_lowercase();
    let labels: Vec<&str> = domain.split('.').collect();
    let labels_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()));
    if !labels_ok {
        return Err(EmailError::Domain);
    }
    Ok(format!("{local}@{domain}"))
}

impl EmailError {
    /// What is wrong, in English (the pages translate by variant).
    pub fn message(self) -> &'static str {
        match self {
            EmailError::Empty => "is empty",
            EmailError::TooLong => "is longer than 254 characters",
            EmailError::At => "is not an email address (one '@' with something on each side)",
            EmailError::Local => "has a part before '@' that no address has",
            EmailError::Domain => "has no valid domain",
            EmailError::Characters => "may not hold spaces or characters outside ASCII",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_syntax() {
        assert_eq!(
            parse_email(" Kari.Nordmann+x@Example.NO "),
            Ok("Kari.Nordmann+x@example.no".into())
        );
        for (bad, why) in [
            ("", EmailError::Empty),
            ("kari", EmailError::At),
            ("kari@@example.no", EmailError::At),
            ("@example.no", EmailError::At),
            ("kari@", EmailError::At),
            ("kari nordmann@example.no", EmailError::Characters),
            ("kåri@example.no", EmailError::Characters),
            (".kari@example.no", EmailError::Local),
            ("ka..ri@example.no", EmailError::Local),
            ("ka(ri@example.no", EmailError::Local),
            ("kari@example", EmailError::Domain),
            ("kari@-example.no", EmailError::Domain),
            ("kari@example.n0", EmailError::Domain),
            ("kari@exa_mple.no", EmailError::Domain),
        ] {
            assert_eq!(parse_email(bad), Err(why), "{bad}");
        }
        let long = format!("{}@example.no", "a".repeat(250));
        assert_eq!(parse_email(&long), Err(EmailError::TooLong));
    }
}
