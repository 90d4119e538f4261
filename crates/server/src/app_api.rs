//! The device API (`/api/v1/app/…`): what the phone app calls.
//!
//! This part: completing an activation. The app has made its device key (ECDSA P-256) and
//! holds a one-time activation code; it sends the code and its public key, and gets the
//! app ID it will show. The code is checked against its security period and completion
//! window (`[policy.app]`), the person's previous app is deactivated in the same
//! transaction, and the code cannot be used again.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use segl_crypto::random::{random_digits, sha256_b64url};
use segl_store::apps::{self, CodeCheck, NewAppDevice};
use segl_store::audit::{self, Event};
use segl_store::persons;
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;
use crate::flow::{ApiJson, rfc3339};

/// The device API routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/app/activations", post(activate))
}

/// Letters and digits of activation codes: no 0/O, 1/I/L, so a code read from a letter
/// is typed right.
pub const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
/// Characters in an activation code (about 79 bits).
pub const CODE_LEN: usize = 16;

/// A new activation code, shown as four groups of four (`ABCD-EFGH-JKMN-PQRS`).
pub fn new_activation_code() -> String {
    let raw: [u8; CODE_LEN] = segl_crypto::random::random_bytes();
    let chars: Vec<char> = raw
        .iter()
        // 256 is not a multiple of 31: the first 248 values map evenly.
        .map(|b| CODE_ALPHABET[usize::from(*b) % CODE_ALPHABET.len()] as char)
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// The code as stored: upper case, without the dashes and spaces a person may type.
/// `None` when it cannot be a code (wrong length or letters).
pub fn normalize_code(s: &str) -> Option<String> {
    let c: String = s
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (c.len() == CODE_LEN && c.bytes().all(|b| CODE_ALPHABET.contains(&b))).then_some(c)
}

/// The stored form of a code: its SHA-256, so a copy of the database holds no usable code.
pub fn code_hash(normalized: &str) -> String {
    sha256_b64url(normalized.as_bytes())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivateBody {
    /// The one-time activation code.
    activation_code: String,
    /// The device's public key: the uncompressed P-256 point, base64url.
    public_key: String,
    /// A name for the device ("Kari's phone").
    #[serde(default)]
    label: Option<String>,
}

const MAX_LABEL: usize = 64;

async fn activate(
    State(st): State<AppState>,
    ApiJson(b): ApiJson<ActivateBody>,
) -> Result<Response, ApiError> {
    let bad = |code: &'static str, detail: &str| {
        ApiError::problem(StatusCode::BAD_REQUEST, code, detail.to_string())
    };
    let code = normalize_code(&b.activation_code).ok_or_else(|| {
        bad(
            "malformed_activation_code",
            "an activation code is 16 letters and digits, as ABCD-EFGH-JKMN-PQRS",
        )
    })?;
    // Decoded strictly (no padding, no stray bits), so the text stored is canonical.
    segl_crypto::device::public_key_from_b64url(&b.public_key)
        .map_err(|e| bad("malformed_public_key", &e.to_string()))?;
    let label = b.label.filter(|l| !l.trim().is_empty());
    if label
        .as_ref()
        .is_some_and(|l| l.chars().count() > MAX_LABEL || l.chars().any(char::is_control))
    {
        return Err(bad(
            "malformed_label",
            "the label is at most 64 characters, without control characters",
        ));
    }
    let now = st.now();
    let policy = &st.settings.policy.app;
    let mut tx = st.store.begin().await?;
    let id = match apps::check_code(
        &mut tx,
        &code_hash(&code),
        None,
        &policy.activation(),
        i64::from(policy.second_code_max_failures),
        now,
    )
    .await?
    {
        CodeCheck::Ready(id) => id,
        CodeCheck::Unknown => {
            return Err(ApiError::problem(
                StatusCode::NOT_FOUND,
                "activation_code_unknown",
                "no activation has this code; check it against the letter",
            ));
        }
        CodeCheck::NotYet { opens_at } => {
            return Err(ApiError::problem(
                StatusCode::CONFLICT,
                "activation_not_open",
                format!(
                    "for your safety the activation opens at {} (UTC); try again then",
                    rfc3339(opens_at)
                ),
            ));
        }
        CodeCheck::Ended => return Err(ended()),
        CodeCheck::WrongSecondCode { .. } => {
            return Err(ApiError::problem(
                StatusCode::UNAUTHORIZED,
                "wrong_second_code",
                "this activation needs its second code",
            ));
        }
    };
    let activation = apps::activation(&mut tx, &id)
        .await?
        .ok_or_else(|| ApiError::Internal("a ready activation vanished".into()))?;
    let person = persons::by_id(&mut tx, &activation.person_id)
        .await?
        .ok_or_else(|| ApiError::Internal("an activation without its person".into()))?;
    let has_mobile = person
        .phone
        .as_deref()
        .is_some_and(|p| segl_core::app::MobileNumber::parse(p).is_ok());
    if policy.require_mobile && !has_mobile {
        return Err(ApiError::problem(
            StatusCode::CONFLICT,
            "mobile_number_required",
            "the app needs a Norwegian mobile number (+47) on file; ask support to add it",
        ));
    }
    let app_id = random_digits(12);
    let replaced = apps::activate(
        &mut tx,
        &NewAppDevice {
            app_id: &app_id,
            person_id: &person.id,
            public_key: &b.public_key,
            label: label.as_deref(),
        },
        now,
    )
    .await?;
    if !apps::complete_activation(&mut tx, &id, &app_id, now).await? {
        return Err(ended());
    }
    audit::append(
        &mut tx,
        &Event {
            event: "app.activated",
            subject: Some(&person.id),
            client_id: None,
            data: json!({
                "app_id": app_id,
                "method": activation.method.as_str(),
                "replaced": replaced,
            }),
        },
        now,
    )
    .await?;
    tx.commit().await.map_err(segl_store::StoreError::from)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"app_id": app_id, "replaced_app_id": replaced})),
    )
        .into_response())
}

fn ended() -> ApiError {
    ApiError::problem(
        StatusCode::GONE,
        "activation_ended",
        "this activation code has been used, has expired or was cancelled",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_four_groups_from_the_alphabet_and_normalize_back() {
        for _ in 0..200 {
            let c = new_activation_code();
            assert_eq!(c.len(), CODE_LEN + 3, "{c}");
            let n = normalize_code(&c).expect("a new code is valid");
            assert_eq!(n, c.replace('-', ""));
            // Typed in lower case with spaces, it is the same code.
            assert_eq!(normalize_code(&c.to_lowercase().replace('-', " ")), Some(n));
        }
    }

    #[test]
    fn malformed_codes_are_refused() {
        for bad in [
            "",
            "ABCD-EFGH-JKMN-PQR",   // truncated
            "ABCD-EFGH-JKMN-PQRST", // too long
            "ABCD-EFGH-JKMN-PQR0",  // 0 is not in the alphabet
            "ABCD-EFGH-JKMN-PQRÅ",  // not ASCII
            "ABCD_EFGH_JKMN_PQRS",  // other separators
        ] {
            assert_eq!(normalize_code(bad), None, "{bad}");
        }
    }
}
