//! Ordering an eID: the rules, without I/O. A person orders with their national identity
//! number, name and contact information and a proof of identity; the order gets an
//! [`OrderNumber`] that support finds it by, and moves through [`OrderState`]s:
//!
//! ```text
//!   submitted ─┬─ under 13 ──────────────────────────────▶ refused (nothing stored)
//!              ├─ 13–17 ─▶ awaiting_guardian ─┬─ guardian approves ─▶ (identity check)
//!              │                              └─ guardian refuses ──▶ refused
//!              └─ adult ─▶ (identity check)
//!   identity check: MRZ matches ─▶ approved │ MRZ does not match ─▶ rejected (try again)
//!                   manual ─────▶ pending_review ─▶ approved │ rejected (by support)
//!   approved ─▶ (activation code by letter, or SMS + email) ─▶ activated │ expired
//! ```
//!
//! A rejection states its reason, and the person may order again; an order is never
//! changed after it ends.

use serde::{Deserialize, Serialize};
use time::Date;

use crate::app::MobileNumber;
use crate::nin::{Nin, NinError};

/// Below this age no eID is issued.
pub const MIN_AGE: u32 = 13;
/// From this age no guardian is needed.
pub const ADULT_AGE: u32 = 18;
/// Longest name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Lines of a postal address (the name makes one more on the envelope).
pub const MAX_ADDRESS_LINES: usize = 5;
/// Characters per address line.
pub const MAX_ADDRESS_LINE_CHARS: usize = 60;
/// Longest reason given by support or a guardian.
pub const MAX_REASON_CHARS: usize = 500;
/// Control questions set at activation.
pub const CONTROL_QUESTIONS: usize = 3;
/// Digits of an order number (the last one a Luhn check digit).
pub const ORDER_NUMBER_DIGITS: usize = 12;

/// What the eID is ordered for: the channel a maintenance window can close.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderKind {
    /// The phone app.
    App,
    /// A code device ("kodebrikke") sent by post.
    Card,
}

impl OrderKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderKind::App => "app",
            OrderKind::Card => "card",
        }
    }

    /// Parses a stored or typed name.
    pub fn parse(s: &str) -> Option<OrderKind> {
        match s {
            "app" => Some(OrderKind::App),
            "card" => Some(OrderKind::Card),
            _ => None,
        }
    }
}

/// How the activation code reaches the person.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// One code by letter to the postal address.
    Letter,
    /// Two codes, one by SMS and one by email; both are needed.
    SmsEmail,
}

impl Delivery {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Letter => "letter",
            Delivery::SmsEmail => "sms_email",
        }
    }

    /// Parses a stored or typed name.
    pub fn parse(s: &str) -> Option<Delivery> {
        match s {
            "letter" => Some(Delivery::Letter),
            "sms_email" => Some(Delivery::SmsEmail),
            _ => None,
        }
    }
}

/// Where an order stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// A minor's order, waiting for the guardian named in it.
    AwaitingGuardian,
    /// Waiting for support to check the identity document.
    PendingReview,
    /// Identity checked; the activation code is on its way.
    Approved,
    /// The person has activated the eID.
    Activated,
    /// The identity check failed; the reason says why, and the person may order again.
    Rejected,
    /// The guardian refused.
    Refused,
    /// Not activated in time.
    Expired,
}

impl OrderState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::AwaitingGuardian => "awaiting_guardian",
            OrderState::PendingReview => "pending_review",
            OrderState::Approved => "approved",
            OrderState::Activated => "activated",
            OrderState::Rejected => "rejected",
            OrderState::Refused => "refused",
            OrderState::Expired => "expired",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<OrderState> {
        Some(match s {
            "awaiting_guardian" => OrderState::AwaitingGuardian,
            "pending_review" => OrderState::PendingReview,
            "approved" => OrderState::Approved,
            "activated" => OrderState::Activated,
            "rejected" => OrderState::Rejected,
            "refused" => OrderState::Refused,
            "expired" => OrderState::Expired,
            _ => return None,
        })
    }

    /// Whether the order is still under way (a person has at most one such order).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            OrderState::AwaitingGuardian | OrderState::PendingReview | OrderState::Approved
        )
    }
}

/// What a person's age means for an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgeRule {
    /// Under [`MIN_AGE`]: refused.
    TooYoung,
    /// [`MIN_AGE`] to 17: a guardian must approve.
    NeedsGuardian,
    /// An adult orders alone.
    Adult,
}

/// The rule for a person of `age` (whole years).
pub fn age_rule(age: u32) -> AgeRule {
    if age < MIN_AGE {
        AgeRule::TooYoung
    } else if age < ADULT_AGE {
        AgeRule::NeedsGuardian
    } else {
        AgeRule::Adult
    }
}

// ---------------------------------------------------------------------------------------
// Order number
// ---------------------------------------------------------------------------------------

/// An order's number: twelve digits, the last a Luhn check digit so that a mistyped number
/// is caught before a look-up. Shown in groups of four (`1234 5678 9012`); typed with or
/// without spaces and dashes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrderNumber(String);

impl OrderNumber {
    /// Makes a number from eleven digits (random, from the caller), adding the check digit.
    /// `None` when `body` is not eleven ASCII digits.
    pub fn from_body(body: &str) -> Option<OrderNumber> {
        if body.len() != ORDER_NUMBER_DIGITS - 1 || !body.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let check = luhn_check_digit(body);
        Some(OrderNumber(format!("{body}{check}")))
    }

    /// Parses a typed number.
    pub fn parse(s: &str) -> Result<OrderNumber, OrderError> {
        let digits: String = s
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '\u{a0}'))
            .collect();
        if digits.len() != ORDER_NUMBER_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(OrderError::InvalidOrderNumber(
                "an order number has 12 digits",
            ));
        }
        let (body, check) = digits.split_at(ORDER_NUMBER_DIGITS - 1);
        if luhn_check_digit(body).to_string() != check {
            return Err(OrderError::InvalidOrderNumber(
                "the order number's check digit is wrong: check for a typing error",
            ));
        }
        Ok(OrderNumber(digits))
    }

    /// The twelve digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// In groups of four, as printed.
    pub fn grouped(&self) -> String {
        let d = &self.0;
        format!("{} {} {}", &d[0..4], &d[4..8], &d[8..12])
    }
}

impl TryFrom<String> for OrderNumber {
    type Error = OrderError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        OrderNumber::parse(&s)
    }
}

impl From<OrderNumber> for String {
    fn from(n: OrderNumber) -> String {
        n.0
    }
}

impl std::fmt::Display for OrderNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.grouped())
    }
}

/// The Luhn (mod 10) check digit of a string of ASCII digits.
fn luhn_check_digit(body: &str) -> u8 {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let dd = d * 2;
                if dd > 9 { dd - 9 } else { dd }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

// ---------------------------------------------------------------------------------------
// The order form
// ---------------------------------------------------------------------------------------

/// What the person proves their identity with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Evidence {
    /// The machine-readable zone of a passport or national ID card, as typed or scanned.
    Mrz(String),
    /// The person shows a document to support (at a counter or by video): the order waits
    /// in the manual review queue.
    Manual,
}

/// An order as submitted.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderForm {
    /// National identity number.
    pub nin: String,
    /// Full name, given names first.
    pub name: String,
    /// Mobile number (needed for the app, and for SMS delivery).
    #[serde(default)]
    pub phone: Option<String>,
    /// Email address (needed for SMS + email delivery).
    #[serde(default)]
    pub email: Option<String>,
    /// App or code device.
    pub kind: String,
    /// Letter, or SMS and email.
    pub delivery: String,
    /// Postal address lines (needed for a letter).
    #[serde(default)]
    pub address: Vec<String>,
    /// The guardian's national identity number (needed under 18).
    #[serde(default)]
    pub guardian_nin: Option<String>,
    /// The proof of identity.
    pub evidence: Evidence,
}

/// An order form that follows the rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidOrder {
    /// The person's number.
    pub nin: Nin,
    /// The name, whitespace tidied.
    pub name: String,
    /// E.164 mobile number.
    pub phone: Option<String>,
    /// Email, trimmed.
    pub email: Option<String>,
    /// App or card.
    pub kind: OrderKind,
    /// Letter or SMS + email.
    pub delivery: Delivery,
    /// Address lines, trimmed (empty unless by letter).
    pub address: Vec<String>,
    /// The guardian, for a minor.
    pub guardian: Option<Nin>,
    /// The proof.
    pub evidence: Evidence,
    /// What the age means.
    pub age_rule: AgeRule,
}

/// Why an order form, number or decision is refused. [`OrderError::field`] names the form
/// field, [`OrderError::code`] the problem type.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// The national identity number does not parse.
    #[error("national identity number: {0}")]
    Nin(NinError),
    /// Name empty, too long or with characters no name has.
    #[error("name: {0}")]
    Name(&'static str),
    /// The phone number is not a Norwegian mobile number.
    #[error("phone: {0}")]
    Phone(String),
    /// A phone number is needed for this order.
    #[error("phone: a Norwegian mobile number is needed for {0}")]
    PhoneRequired(&'static str),
    /// Email malformed.
    #[error("email: {0}")]
    Email(&'static str),
    /// An email address is needed for SMS + email delivery.
    #[error("email: an email address is needed when the codes go by SMS and email")]
    EmailRequired,
    /// Unknown kind.
    #[error("kind: must be 'app' or 'card'")]
    Kind,
    /// Unknown delivery.
    #[error("delivery: must be 'letter' or 'sms_email'")]
    Delivery,
    /// Address missing or malformed.
    #[error("address: {0}")]
    Address(&'static str),
    /// Under [`MIN_AGE`].
    #[error("an eID can be ordered from the age of 13; this person is {age}")]
    TooYoung {
        /// Age in years.
        age: u32,
    },
    /// A minor's order names no guardian.
    #[error("guardian_nin: a person under 18 needs a guardian's approval; name the guardian")]
    GuardianRequired,
    /// The guardian's number does not parse.
    #[error("guardian_nin: {0}")]
    GuardianNin(NinError),
    /// The guardian is not an adult, or is the person themselves.
    #[error("guardian_nin: {0}")]
    Guardian(&'static str),
    /// An adult's order names a guardian.
    #[error("guardian_nin: only a person under 18 names a guardian")]
    GuardianNotNeeded,
    /// An order number that does not parse.
    #[error("order number: {0}")]
    InvalidOrderNumber(&'static str),
    /// A reason empty or too long.
    #[error("reason: {0}")]
    Reason(&'static str),
    /// Control questions: not three, not different, or a question or answer out of bounds.
    #[error("{0}")]
    Questions(String),
}

impl OrderError {
    /// The form field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            OrderError::Nin(_) | OrderError::TooYoung { .. } => "nin",
            OrderError::Name(_) => "name",
            OrderError::Phone(_) | OrderError::PhoneRequired(_) => "phone",
            OrderError::Email(_) | OrderError::EmailRequired => "email",
            OrderError::Kind => "kind",
            OrderError::Delivery => "delivery",
            OrderError::Address(_) => "address",
            OrderError::GuardianRequired
            | OrderError::GuardianNin(_)
            | OrderError::Guardian(_)
            | OrderError::GuardianNotNeeded => "guardian_nin",
            OrderError::InvalidOrderNumber(_) => "number",
            OrderError::Reason(_) => "reason",
            OrderError::Questions(_) => "questions",
        }
    }

    /// The problem type (`invalid_<field>`, or the rule that refused).
    pub fn code(&self) -> &'static str {
        match self {
            OrderError::TooYoung { .. } => "too_young",
            OrderError::GuardianRequired => "guardian_required",
            OrderError::Guardian(_) | OrderError::GuardianNotNeeded => "invalid_guardian",
            OrderError::Nin(_) => "invalid_nin",
            OrderError::Name(_) => "invalid_name",
            OrderError::Phone(_) | OrderError::PhoneRequired(_) => "invalid_phone",
            OrderError::Email(_) | OrderError::EmailRequired => "invalid_email",
            OrderError::Kind => "invalid_kind",
            OrderError::Delivery => "invalid_delivery",
            OrderError::Address(_) => "invalid_address",
            OrderError::GuardianNin(_) => "invalid_guardian_nin",
            OrderError::InvalidOrderNumber(_) => "invalid_order_number",
            OrderError::Reason(_) => "invalid_reason",
            OrderError::Questions(_) => "invalid_questions",
        }
    }
}

/// Checks an order form on `today`.
pub fn validate(form: &OrderForm, today: Date) -> Result<ValidOrder, OrderError> {
    let nin = Nin::parse(form.nin.trim()).map_err(OrderError::Nin)?;
    let age = nin.age_on(today);
    let age_rule = age_rule(age);
    if age_rule == AgeRule::TooYoung {
        return Err(OrderError::TooYoung { age });
    }
    let name = check_name(&form.name)?;
    let kind = OrderKind::parse(form.kind.trim()).ok_or(OrderError::Kind)?;
    let delivery = Delivery::parse(form.delivery.trim()).ok_or(OrderError::Delivery)?;
    let phone = match form
        .phone
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        Some(p) => Some(
            MobileNumber::parse(p)
                .map_err(|e| OrderError::Phone(e.to_string()))?
                .as_str()
                .to_string(),
        ),
        None => None,
    };
    if phone.is_none() {
        match (kind, delivery) {
            (OrderKind::App, _) => return Err(OrderError::PhoneRequired("the app")),
            (_, Delivery::SmsEmail) => return Err(OrderError::PhoneRequired("codes by SMS")),
            _ => {}
        }
    }
    let email = match form
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        Some(e) => Some(check_email(e)?),
        None => None,
    };
    if email.is_none() && delivery == Delivery::SmsEmail {
        return Err(OrderError::EmailRequired);
    }
    let address = check_address(&form.address, delivery)?;
    let guardian = match form
        .guardian_nin
        .as_deref()
        .map(str::trim)
        .filter(|g| !g.is_empty())
    {
        Some(g) => {
            if age_rule == AgeRule::Adult {
                return Err(OrderError::GuardianNotNeeded);
            }
            let g = Nin::parse(g).map_err(OrderError::GuardianNin)?;
            if g == nin {
                return Err(OrderError::Guardian(
                    "a person cannot be their own guardian",
                ));
            }
            if !g.is_adult_on(today) {
                return Err(OrderError::Guardian("the guardian must be 18 or older"));
            }
            Some(g)
        }
        None if age_rule == AgeRule::NeedsGuardian => return Err(OrderError::GuardianRequired),
        None => None,
    };
    Ok(ValidOrder {
        nin,
        name,
        phone,
        email,
        kind,
        delivery,
        address,
        guardian,
        evidence: form.evidence.clone(),
        age_rule,
    })
}

/// A name: letters (any script), spaces, hyphens, apostrophes and dots; 2 to
/// [`MAX_NAME_CHARS`] characters; at least two words (given name and surname).
pub fn check_name(name: &str) -> Result<String, OrderError> {
    let tidy = name.split_whitespace().collect::<Vec<_>>().join(" ");
    if tidy.is_empty() {
        return Err(OrderError::Name("is empty"));
    }
    if tidy.chars().count() > MAX_NAME_CHARS {
        return Err(OrderError::Name("is longer than 200 characters"));
    }
    if !tidy
        .chars()
        .all(|c| c.is_alphabetic() || matches!(c, ' ' | '-' | '\'' | '.' | '’'))
    {
        return Err(OrderError::Name(
            "may hold letters, spaces, hyphens, apostrophes and dots only",
        ));
    }
    if !tidy.contains(' ') {
        return Err(OrderError::Name("give both given name and surname"));
    }
    Ok(tidy)
}

/// An email address, by [`crate::email::parse_email`] (the domain lower-cased).
pub fn check_email(email: &str) -> Result<String, OrderError> {
    crate::email::parse_email(email).map_err(|e| OrderError::Email(e.message()))
}

fn check_address(lines: &[String], delivery: Delivery) -> Result<Vec<String>, OrderError> {
    let lines: Vec<String> = lines
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect();
    if delivery != Delivery::Letter {
        return Ok(Vec::new());
    }
    if lines.len() < 2 {
        return Err(OrderError::Address(
            "a letter needs at least a street line and a postcode line",
        ));
    }
    if lines.len() > MAX_ADDRESS_LINES {
        return Err(OrderError::Address("at most 5 lines"));
    }
    if lines
        .iter()
        .any(|l| l.chars().count() > MAX_ADDRESS_LINE_CHARS || l.chars().any(char::is_control))
    {
        return Err(OrderError::Address(
            "a line is longer than 60 characters or holds control characters",
        ));
    }
    Ok(lines)
}

/// A reason given by support or a guardian: 1 to [`MAX_REASON_CHARS`] characters without
/// control characters.
pub fn check_reason(reason: &str) -> Result<String, OrderError> {
    let r = reason.trim();
    if r.is_empty() {
        return Err(OrderError::Reason("is empty"));
    }
    if r.chars().count() > MAX_REASON_CHARS {
        return Err(OrderError::Reason("is longer than 500 characters"));
    }
    if r.chars().any(char::is_control) {
        return Err(OrderError::Reason("holds control characters"));
    }
    Ok(r.to_string())
}

/// A control answer as it is hashed: case, surrounding and repeated spaces do not matter.
pub fn normalize_answer(a: &str) -> String {
    a.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Control questions and their answers as typed: exactly [`CONTROL_QUESTIONS`], each
/// question 5 to 200 characters and different from the others, each answer 3 to 100 once
/// normalised ([`normalize_answer`]); no control characters.
pub fn check_questions(qs: &[(&str, &str)]) -> Result<(), OrderError> {
    let invalid = |d: String| Err(OrderError::Questions(d));
    if qs.len() != CONTROL_QUESTIONS {
        return invalid(format!(
            "questions: give exactly {CONTROL_QUESTIONS} control questions with answers"
        ));
    }
    for (i, (question, answer)) in qs.iter().enumerate() {
        let n = i + 1;
        let len = question.trim().chars().count();
        if !(5..=200).contains(&len) || question.chars().any(char::is_control) {
            return invalid(format!(
                "questions[{n}].question: 5 to 200 characters, no control characters"
            ));
        }
        let a = normalize_answer(answer);
        if !(3..=100).contains(&a.chars().count()) || a.chars().any(char::is_control) {
            return invalid(format!(
                "questions[{n}].answer: 3 to 100 characters, no control characters"
            ));
        }
    }
    let mut seen: Vec<String> = qs.iter().map(|(q, _)| normalize_answer(q)).collect();
    seen.sort();
    seen.dedup();
    if seen.len() != qs.len() {
        return invalid("questions: each question must be different".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 12 - 02);

    /// A valid number for a birth date (individual number 400–499: born 1900–1999 or
    /// 2000–2039 by the table; the check digits are computed).
    fn nin_born(d: Date) -> String {
        let (y, m, day) = (d.year(), d.month() as u8, d.day());
        let ind = if y >= 2000 { 500 } else { 400 };
        for i in ind..ind + 99 {
            let s = format!("{day:02}{m:02}{:02}{i:03}", y % 100);
            let digits: Vec<u32> = s.chars().map(|c| c.to_digit(10).unwrap()).collect();
            let w1 = [3, 7, 6, 1, 8, 9, 4, 5, 2];
            let k1 = 11 - w1.iter().zip(&digits).map(|(w, d)| w * d).sum::<u32>() % 11;
            let k1 = if k1 == 11 { 0 } else { k1 };
            if k1 == 10 {
                continue;
            }
            let w2 = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];
            let mut all = digits.clone();
            all.push(k1);
            let k2 = 11 - w2.iter().zip(&all).map(|(w, d)| w * d).sum::<u32>() % 11;
            let k2 = if k2 == 11 { 0 } else { k2 };
            if k2 == 10 {
                continue;
            }
            let n = format!("{s}{k1}{k2}");
            if Nin::parse(&n).is_ok_and(|p| p.birth_date() == d) {
                return n;
            }
        }
        panic!("no number for {d}");
    }

    fn form(nin: &str) -> OrderForm {
        OrderForm {
            nin: nin.into(),
            name: "Kari Nordmann".into(),
            phone: Some("+47 412 34 567".into()),
            email: Some("kari@example.no".into()),
            kind: "app".into(),
            delivery: "letter".into(),
            address: vec!["Storgata 1".into(), "0155 Oslo".into()],
            guardian_nin: None,
            evidence: Evidence::Manual,
        }
    }

    #[test]
    fn order_numbers_carry_a_luhn_digit() {
        // The Luhn example everyone uses: 7992739871 → 3.
        assert_eq!(luhn_check_digit("7992739871"), 3);
        let n = OrderNumber::from_body("12345678901").unwrap();
        assert_eq!(OrderNumber::parse(&n.grouped()).unwrap(), n);
        assert_eq!(OrderNumber::parse(&format!("{}", n)).unwrap(), n);
        // Every single-digit typo is caught.
        for i in 0..ORDER_NUMBER_DIGITS {
            for d in b'0'..=b'9' {
                let mut s = n.as_str().as_bytes().to_vec();
                if s[i] == d {
                    continue;
                }
                s[i] = d;
                assert!(OrderNumber::parse(std::str::from_utf8(&s).unwrap()).is_err());
            }
        }
        assert!(OrderNumber::parse("1234").is_err());
        assert!(OrderNumber::parse("12345678901x").is_err());
        assert!(OrderNumber::from_body("1234567890").is_none());
    }

    #[test]
    fn age_rules_at_the_edges() {
        assert_eq!(age_rule(12), AgeRule::TooYoung);
        assert_eq!(age_rule(13), AgeRule::NeedsGuardian);
        assert_eq!(age_rule(17), AgeRule::NeedsGuardian);
        assert_eq!(age_rule(18), AgeRule::Adult);
        // 13 years old today, and a day short of it.
        let thirteen = nin_born(date!(2013 - 12 - 02));
        assert_eq!(
            validate(&form(&thirteen), TODAY).unwrap_err(),
            OrderError::GuardianRequired
        );
        let twelve = nin_born(date!(2013 - 12 - 03));
        assert_eq!(
            validate(&form(&twelve), TODAY).unwrap_err(),
            OrderError::TooYoung { age: 12 }
        );
    }

    #[test]
    fn a_minor_names_an_adult_guardian() {
        let minor = nin_born(date!(2010 - 05 - 17));
        let adult = nin_born(date!(1980 - 01 - 31));
        let mut f = form(&minor);
        f.guardian_nin = Some(adult.clone());
        let v = validate(&f, TODAY).unwrap();
        assert_eq!(v.age_rule, AgeRule::NeedsGuardian);
        assert_eq!(v.guardian.unwrap().as_str(), adult);
        f.guardian_nin = Some(nin_born(date!(2009 - 01 - 01)));
        assert_eq!(
            validate(&f, TODAY).unwrap_err(),
            OrderError::Guardian("the guardian must be 18 or older")
        );
        f.guardian_nin = Some(minor.clone());
        assert_eq!(validate(&f, TODAY).unwrap_err().code(), "invalid_guardian");
        f.guardian_nin = Some("12345678901".into());
        assert_eq!(validate(&f, TODAY).unwrap_err().field(), "guardian_nin");
        let mut grown = form(&adult);
        grown.guardian_nin = Some(nin_born(date!(1960 - 01 - 01)));
        assert_eq!(
            validate(&grown, TODAY).unwrap_err(),
            OrderError::GuardianNotNeeded
        );
    }

    #[test]
    fn each_field_is_checked_and_named() {
        let adult = nin_born(date!(1985 - 06 - 30));
        assert!(validate(&form(&adult), TODAY).is_ok());
        type Change = Box<dyn Fn(&mut OrderForm)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|f| f.nin = "01010112345".into()), "nin"),
            (Box::new(|f| f.name = "  ".into()), "name"),
            (Box::new(|f| f.name = "Kari".into()), "name"),
            (Box::new(|f| f.name = "Kari <script>".into()), "name"),
            (Box::new(|f| f.name = "K ".repeat(150)), "name"),
            (Box::new(|f| f.phone = Some("22 22 22 22".into())), "phone"),
            (Box::new(|f| f.phone = None), "phone"),
            (
                Box::new(|f| f.email = Some("kari.example.no".into())),
                "email",
            ),
            (
                Box::new(|f| f.email = Some("kari@localhost".into())),
                "email",
            ),
            (
                Box::new(|f| f.email = Some("ka ri@example.no".into())),
                "email",
            ),
            (Box::new(|f| f.kind = "fax".into()), "kind"),
            (Box::new(|f| f.delivery = "pigeon".into()), "delivery"),
            (
                Box::new(|f| f.address = vec!["Storgata 1".into()]),
                "address",
            ),
            (
                Box::new(|f| f.address = vec!["x".repeat(101), "0155 Oslo".into()]),
                "address",
            ),
            (Box::new(|f| f.address = vec!["a".into(); 6]), "address"),
            (
                Box::new(|f| {
                    f.delivery = "sms_email".into();
                    f.email = None;
                }),
                "email",
            ),
        ];
        for (change, field) in cases {
            let mut f = form(&adult);
            change(&mut f);
            let e = validate(&f, TODAY).unwrap_err();
            assert_eq!(e.field(), field, "{e}");
        }
        // A code device by letter needs no phone.
        let mut f = form(&adult);
        f.kind = "card".into();
        f.phone = None;
        assert!(validate(&f, TODAY).is_ok());
        // By SMS and email, no address is kept.
        let mut f = form(&adult);
        f.delivery = "sms_email".into();
        assert!(validate(&f, TODAY).unwrap().address.is_empty());
    }

    #[test]
    fn control_questions_are_three_different_with_real_answers() {
        let q = [
            ("What was your first pet?", "Pusur"),
            ("Where did you go to school?", " Hønefoss "),
            ("What is your favourite dish?", "Raspeballer"),
        ];
        assert!(check_questions(&q).is_ok());
        assert_eq!(normalize_answer("  HØNEFOSS   by "), "hønefoss by");
        let e = check_questions(&q[..2]).unwrap_err();
        assert_eq!((e.field(), e.code()), ("questions", "invalid_questions"));
        let mut same = q;
        same[2].0 = " what was your FIRST pet? ";
        assert!(
            check_questions(&same)
                .unwrap_err()
                .to_string()
                .contains("different")
        );
        let mut short = q;
        short[1].1 = " a ";
        assert!(
            check_questions(&short)
                .unwrap_err()
                .to_string()
                .contains("answer")
        );
    }

    #[test]
    fn names_are_tidied_and_international() {
        assert_eq!(check_name("  Åse   Ødegård-Ås ").unwrap(), "Åse Ødegård-Ås");
        assert!(check_name("Zoë O’Neill").is_ok());
        assert!(check_name("Jean-Luc d'Artagnan Jr.").is_ok());
    }

    #[test]
    fn states_round_trip_and_know_when_open() {
        for s in [
            OrderState::AwaitingGuardian,
            OrderState::PendingReview,
            OrderState::Approved,
            OrderState::Activated,
            OrderState::Rejected,
            OrderState::Refused,
            OrderState::Expired,
        ] {
            assert_eq!(OrderState::parse(s.as_str()), Some(s));
        }
        assert!(OrderState::Approved.is_open());
        assert!(!OrderState::Rejected.is_open());
        assert!(check_reason("").is_err());
        assert!(check_reason("bad\u{7}").is_err());
        assert_eq!(
            check_reason("  photo does not match ").unwrap(),
            "photo does not match"
        );
    }
}
