//! Limits and lifetimes in one place: how many wrong guesses lock a credential, how far
//! the one-time-code checks look, and how long each artefact (flow, code, token, session)
//! lives.
//!
//! It is the `[policy]` table of `segl.toml`. Every field has a default, unknown keys are
//! errors, and [`Policy::validate`] refuses values that would switch a protection off or
//! make a lifetime absurd, naming the field, so a bad setting stops start-up instead of
//! weakening the service quietly.

use serde::{Deserialize, Serialize};

use crate::app::AppPolicy;
use crate::password::PasswordPolicy;

/// Longest lifetime of anything: a year and a day. It catches milliseconds typed as
/// seconds and keeps `now + ttl` far from the edge of any timestamp type.
const MAX_TTL_SECS: i64 = 366 * 24 * 60 * 60;
/// RFC 6749 §4.1.2 recommends at most 10 minutes for an authorization code.
const MAX_AUTH_CODE_TTL_SECS: i64 = 600;
/// RFC 9126 §2.2 expects a pushed request URI to live between 5 and 600 seconds.
const MAX_PAR_TTL_SECS: i64 = 600;
/// Beyond this many wrong guesses in a row a lockout no longer slows down guessing.
const MAX_FAILURES: i64 = 100;
/// Every code in the look-ahead is accepted, so a wide one is as good as extra guesses.
const MAX_HOTP_LOOK_AHEAD: i64 = 100;
/// Likewise for TOTP steps either side of now (RFC 6238 §5.2 advises at most one).
const MAX_TOTP_WINDOW: i64 = 10;
/// A resync computes one HMAC per counter value searched; this bounds the work.
const MAX_RESYNC_HOTP_SEARCH: i64 = 100_000;
/// About 3.5 days of 30-second steps either side; further drift means a broken clock.
const MAX_RESYNC_TOTP_STEPS: i64 = 10_000;
/// An activation's security period and window, and an approval's wait: at most a week.
const MAX_APP_PERIOD_SECS: i64 = 7 * 24 * 60 * 60;
/// An approval request longer than 10 minutes is not "the login I just started".
const MAX_APP_REQUEST_TTL_SECS: i64 = 600;
/// NIST SP 800-63B: user-chosen passwords of at least 8 characters.
const MIN_PASSWORD_MIN_LENGTH: i64 = 8;
/// NIST SP 800-63B: permit passwords of at least 64 characters.
const MIN_PASSWORD_MAX_LENGTH: i64 = 64;
/// Longer passwords add no strength, only work per request.
const MAX_PASSWORD_MAX_LENGTH: i64 = 4096;

/// The limits segl enforces. See `docs/operator-guide.md` for the TOML form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Rules for new passwords.
    pub password: PasswordPolicy,
    /// Wrong passwords in a row that lock the password until an administrator unlocks it.
    pub password_max_failures: u32,
    /// Wrong one-time codes in a row that block the code device until it is resynchronised
    /// or unblocked.
    pub otp_max_failures: u32,
    /// HOTP counter values after the expected one that a code may match, for presses of the
    /// button that never reached us.
    pub hotp_look_ahead: u32,
    /// TOTP steps either side of the expected one a code may match, for clock drift.
    pub totp_window: u32,
    /// Counter values searched when an administrator resynchronises an HOTP device with
    /// two consecutive codes.
    pub resync_hotp_search: u32,
    /// TOTP steps searched either side when resynchronising (40 × 30 s ≈ 20 minutes).
    pub resync_totp_steps: u32,
    /// Seconds a login flow may take from start to finish.
    pub flow_ttl_secs: i64,
    /// Wrong answers in one flow before the flow is ended, whatever the credential.
    pub flow_max_failures: u32,
    /// Seconds an authorization code may wait to be redeemed.
    pub auth_code_ttl_secs: i64,
    /// Seconds an access token is valid.
    pub access_token_ttl_secs: i64,
    /// Seconds an ID token is valid (its `exp`).
    pub id_token_ttl_secs: i64,
    /// Seconds a refresh token is valid.
    pub refresh_token_ttl_secs: i64,
    /// Seconds a browser session at segl lasts, for single sign-on.
    pub session_ttl_secs: i64,
    /// Seconds a pushed authorization request's `request_uri` may wait to be used.
    pub par_ttl_secs: i64,
    /// The phone app (`[policy.app]`).
    pub app: AppPolicy,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            password: PasswordPolicy::default(),
            password_max_failures: 5,
            otp_max_failures: 5,
            hotp_look_ahead: 10,
            totp_window: 1,
            resync_hotp_search: 1000,
            resync_totp_steps: 40,
            flow_ttl_secs: 600,
            flow_max_failures: 5,
            auth_code_ttl_secs: 60,
            access_token_ttl_secs: 600,
            id_token_ttl_secs: 600,
            refresh_token_ttl_secs: 30 * 24 * 60 * 60,
            session_ttl_secs: 8 * 60 * 60,
            par_ttl_secs: 60,
            app: AppPolicy::default(),
        }
    }
}

/// A policy value that is out of range. `field` is the key under `[policy]`, so the message
/// reads like `policy.flow_ttl_secs must be > 0`.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum PolicyError {
    /// A count or lifetime that must be positive is zero or negative.
    #[error("policy.{field} must be > 0")]
    NotPositive {
        /// The offending key, e.g. `flow_ttl_secs`.
        field: &'static str,
    },
    /// A value is below the smallest safe setting.
    #[error("policy.{field} must be at least {min}, it is {value}")]
    TooSmall {
        /// The offending key.
        field: &'static str,
        /// The smallest allowed value.
        min: i64,
        /// The configured value.
        value: i64,
    },
    /// A value is above the largest sensible setting.
    #[error("policy.{field} must be at most {max}, it is {value}")]
    TooLarge {
        /// The offending key.
        field: &'static str,
        /// The largest allowed value.
        max: i64,
        /// The configured value.
        value: i64,
    },
    /// A value is smaller than another it must cover (a resync search narrower than the
    /// normal window, a maximum below a minimum).
    #[error("policy.{field} ({value}) must be at least policy.{other} ({other_value})")]
    LessThan {
        /// The offending key.
        field: &'static str,
        /// Its value.
        value: i64,
        /// The key it is compared with.
        other: &'static str,
        /// That key's value.
        other_value: i64,
    },
}

impl Policy {
    /// Checks every value, in field order, and returns the first problem.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let min_len = as_i64(self.password.min_length);
        let max_len = as_i64(self.password.max_length);
        range(
            "password.min_length",
            min_len,
            MIN_PASSWORD_MIN_LENGTH,
            i64::MAX,
        )?;
        range(
            "password.max_length",
            max_len,
            MIN_PASSWORD_MAX_LENGTH,
            MAX_PASSWORD_MAX_LENGTH,
        )?;
        covers(
            "password.max_length",
            max_len,
            "password.min_length",
            min_len,
        )?;

        range(
            "password_max_failures",
            self.password_max_failures.into(),
            1,
            MAX_FAILURES,
        )?;
        range(
            "otp_max_failures",
            self.otp_max_failures.into(),
            1,
            MAX_FAILURES,
        )?;
        // Zero is allowed for both windows: it means "the exact counter or step only".
        range(
            "hotp_look_ahead",
            self.hotp_look_ahead.into(),
            0,
            MAX_HOTP_LOOK_AHEAD,
        )?;
        range("totp_window", self.totp_window.into(), 0, MAX_TOTP_WINDOW)?;
        range(
            "resync_hotp_search",
            self.resync_hotp_search.into(),
            1,
            MAX_RESYNC_HOTP_SEARCH,
        )?;
        covers(
            "resync_hotp_search",
            self.resync_hotp_search.into(),
            "hotp_look_ahead",
            self.hotp_look_ahead.into(),
        )?;
        range(
            "resync_totp_steps",
            self.resync_totp_steps.into(),
            1,
            MAX_RESYNC_TOTP_STEPS,
        )?;
        covers(
            "resync_totp_steps",
            self.resync_totp_steps.into(),
            "totp_window",
            self.totp_window.into(),
        )?;

        range("flow_ttl_secs", self.flow_ttl_secs, 1, MAX_TTL_SECS)?;
        range(
            "flow_max_failures",
            self.flow_max_failures.into(),
            1,
            MAX_FAILURES,
        )?;
        range(
            "auth_code_ttl_secs",
            self.auth_code_ttl_secs,
            1,
            MAX_AUTH_CODE_TTL_SECS,
        )?;
        range(
            "access_token_ttl_secs",
            self.access_token_ttl_secs,
            1,
            MAX_TTL_SECS,
        )?;
        range("id_token_ttl_secs", self.id_token_ttl_secs, 1, MAX_TTL_SECS)?;
        range(
            "refresh_token_ttl_secs",
            self.refresh_token_ttl_secs,
            1,
            MAX_TTL_SECS,
        )?;
        range("session_ttl_secs", self.session_ttl_secs, 1, MAX_TTL_SECS)?;
        range("par_ttl_secs", self.par_ttl_secs, 1, MAX_PAR_TTL_SECS)?;

        let app = &self.app;
        range(
            "app.security_period_secs",
            app.security_period_secs,
            1,
            MAX_APP_PERIOD_SECS,
        )?;
        range(
            "app.completion_window_secs",
            app.completion_window_secs,
            1,
            MAX_APP_PERIOD_SECS,
        )?;
        range(
            "app.request_ttl_secs",
            app.request_ttl_secs,
            1,
            MAX_APP_REQUEST_TTL_SECS,
        )?;
        range(
            "app.second_code_max_failures",
            app.second_code_max_failures.into(),
            1,
            MAX_FAILURES,
        )?;
        Ok(())
    }
}

/// `min ..= max`, with "must be > 0" as the message when the minimum is 1.
fn range(field: &'static str, value: i64, min: i64, max: i64) -> Result<(), PolicyError> {
    if min == 1 && value < 1 {
        Err(PolicyError::NotPositive { field })
    } else if value < min {
        Err(PolicyError::TooSmall { field, min, value })
    } else if value > max {
        Err(PolicyError::TooLarge { field, max, value })
    } else {
        Ok(())
    }
}

/// `value >= other_value`.
fn covers(
    field: &'static str,
    value: i64,
    other: &'static str,
    other_value: i64,
) -> Result<(), PolicyError> {
    if value < other_value {
        Err(PolicyError::LessThan {
            field,
            value,
            other,
            other_value,
        })
    } else {
        Ok(())
    }
}

/// A `usize` setting as `i64`; one too large for `i64` is certainly over any maximum.
fn as_i64(v: usize) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_as_documented() {
        let p = Policy::default();
        assert_eq!(p.validate(), Ok(()));
        assert_eq!(p.password.min_length, 10);
        assert_eq!(p.password.max_length, 256);
        assert_eq!(p.refresh_token_ttl_secs, 2_592_000);
        assert_eq!(p.session_ttl_secs, 28_800);
    }

    #[test]
    fn serde_fills_defaults_and_refuses_unknown_keys() {
        let p: Policy = serde_json::from_str("{}").unwrap();
        assert_eq!(p, Policy::default());

        let p: Policy =
            serde_json::from_str(r#"{"flow_ttl_secs": 5, "password": {"min_length": 12}}"#)
                .unwrap();
        assert_eq!(p.flow_ttl_secs, 5);
        assert_eq!(p.password.min_length, 12);
        assert_eq!(p.password.max_length, 256);
        assert_eq!(p.otp_max_failures, 5);

        let err = serde_json::from_str::<Policy>(r#"{"flow_ttl": 5}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("flow_ttl"), "{err}");
        assert!(serde_json::from_str::<Policy>(r#"{"password": {"min": 5}}"#).is_err());
    }

    #[test]
    fn round_trips() {
        let p = Policy::default();
        let back: Policy = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn the_app_table_has_defaults_limits_and_no_unknown_keys() {
        let p: Policy = serde_json::from_str(
            r#"{"app": {"security_period_secs": 60, "verification_code": "digits"}}"#,
        )
        .unwrap();
        assert_eq!(p.app.security_period_secs, 60);
        assert_eq!(p.app.completion_window_secs, 7200);
        assert_eq!(p.app.request_ttl_secs, 120);
        assert_eq!(
            p.app.verification_code,
            crate::app::VerificationStyle::Digits
        );
        assert!(p.app.require_mobile);
        assert_eq!(p.app.activation().security_period_secs, 60);
        assert_eq!(p.validate(), Ok(()));
        assert!(serde_json::from_str::<Policy>(r#"{"app": {"period": 1}}"#).is_err());
        assert!(
            serde_json::from_str::<Policy>(r#"{"app": {"verification_code": "emoji"}}"#).is_err()
        );

        assert_eq!(
            invalid(|p| p.app.security_period_secs = 0),
            "policy.app.security_period_secs must be > 0"
        );
        assert_eq!(
            invalid(|p| p.app.completion_window_secs = 8 * 24 * 3600),
            "policy.app.completion_window_secs must be at most 604800, it is 691200"
        );
        assert_eq!(
            invalid(|p| p.app.request_ttl_secs = 601),
            "policy.app.request_ttl_secs must be at most 600, it is 601"
        );
        assert_eq!(
            invalid(|p| p.app.second_code_max_failures = 0),
            "policy.app.second_code_max_failures must be > 0"
        );
    }

    fn invalid(change: impl FnOnce(&mut Policy)) -> String {
        let mut p = Policy::default();
        change(&mut p);
        p.validate().unwrap_err().to_string()
    }

    #[test]
    fn zero_and_negative_are_refused_by_name() {
        assert_eq!(
            invalid(|p| p.flow_ttl_secs = 0),
            "policy.flow_ttl_secs must be > 0"
        );
        assert_eq!(
            invalid(|p| p.session_ttl_secs = -1),
            "policy.session_ttl_secs must be > 0"
        );
        assert_eq!(
            invalid(|p| p.password_max_failures = 0),
            "policy.password_max_failures must be > 0"
        );
        assert_eq!(
            invalid(|p| p.otp_max_failures = 0),
            "policy.otp_max_failures must be > 0"
        );
        assert_eq!(
            invalid(|p| p.flow_max_failures = 0),
            "policy.flow_max_failures must be > 0"
        );
        assert_eq!(
            invalid(|p| p.resync_hotp_search = 0),
            "policy.resync_hotp_search must be > 0"
        );
        assert_eq!(
            invalid(|p| p.resync_totp_steps = 0),
            "policy.resync_totp_steps must be > 0"
        );
        for (name, f) in [
            (
                "auth_code_ttl_secs",
                (|p: &mut Policy| p.auth_code_ttl_secs = 0) as fn(&mut Policy),
            ),
            ("access_token_ttl_secs", |p| p.access_token_ttl_secs = 0),
            ("id_token_ttl_secs", |p| p.id_token_ttl_secs = 0),
            ("refresh_token_ttl_secs", |p| p.refresh_token_ttl_secs = 0),
            ("par_ttl_secs", |p| p.par_ttl_secs = 0),
        ] {
            assert_eq!(invalid(f), format!("policy.{name} must be > 0"));
        }
    }

    #[test]
    fn short_lifetimes_are_allowed() {
        // The end-to-end tests run flows that expire after a second.
        let p = Policy {
            flow_ttl_secs: 1,
            ..Policy::default()
        };
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn zero_windows_are_allowed() {
        let p = Policy {
            hotp_look_ahead: 0,
            totp_window: 0,
            ..Policy::default()
        };
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn password_lengths() {
        assert_eq!(
            invalid(|p| p.password.min_length = 7),
            "policy.password.min_length must be at least 8, it is 7"
        );
        assert_eq!(
            invalid(|p| p.password.max_length = 63),
            "policy.password.max_length must be at least 64, it is 63"
        );
        assert_eq!(
            invalid(|p| p.password.max_length = 5000),
            "policy.password.max_length must be at most 4096, it is 5000"
        );
        assert_eq!(
            invalid(|p| p.password.min_length = 300),
            "policy.password.max_length (256) must be at least policy.password.min_length (300)"
        );
        let long = Policy {
            password: PasswordPolicy {
                min_length: 100,
                max_length: 100,
            },
            ..Policy::default()
        };
        assert_eq!(long.validate(), Ok(()));
    }

    #[test]
    fn upper_bounds() {
        assert_eq!(
            invalid(|p| p.auth_code_ttl_secs = 601),
            "policy.auth_code_ttl_secs must be at most 600, it is 601"
        );
        assert_eq!(
            invalid(|p| p.par_ttl_secs = 3600),
            "policy.par_ttl_secs must be at most 600, it is 3600"
        );
        assert_eq!(
            invalid(|p| p.refresh_token_ttl_secs = 2_592_000_000),
            "policy.refresh_token_ttl_secs must be at most 31622400, it is 2592000000"
        );
        assert_eq!(
            invalid(|p| p.otp_max_failures = 1000),
            "policy.otp_max_failures must be at most 100, it is 1000"
        );
        assert_eq!(
            invalid(|p| p.totp_window = 11),
            "policy.totp_window must be at most 10, it is 11"
        );
        assert_eq!(
            invalid(|p| p.hotp_look_ahead = 101),
            "policy.hotp_look_ahead must be at most 100, it is 101"
        );
    }

    #[test]
    fn resync_must_cover_the_normal_window() {
        assert_eq!(
            invalid(|p| p.resync_hotp_search = 5),
            "policy.resync_hotp_search (5) must be at least policy.hotp_look_ahead (10)"
        );
        assert_eq!(
            invalid(|p| {
                p.totp_window = 3;
                p.resync_totp_steps = 2;
            }),
            "policy.resync_totp_steps (2) must be at least policy.totp_window (3)"
        );
    }
}
