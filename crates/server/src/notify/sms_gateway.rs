//! SMS through a generic HTTP gateway: `POST {url}` with JSON `{"to", "from", "text"}` and,
//! if configured, an `Authorization` header. A 2xx answer means sent (its JSON `id`, if
//! any, is kept); 408, 429 and 5xx, a timeout or a connection error are tried again; any
//! other 4xx is permanent. Redirects are not followed, so the credential goes nowhere else.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use segl_store::outbox::Message;

use super::{Accepted, SendError};

/// `[notify.sms_gateway]`, parsed.
#[derive(Clone, Debug)]
pub struct GatewaySettings {
    /// Where to POST.
    pub url: url::Url,
    /// The `Authorization` header's value (`Bearer …`, `Basic …`), if the gateway wants one.
    pub authorization: Option<String>,
    /// The sender name or number shown on the phone.
    pub sender: String,
    /// Timeout of one request.
    pub timeout: Duration,
}

/// An HTTP SMS gateway client.
pub struct SmsGateway {
    http: reqwest::Client,
    url: url::Url,
    authorization: Option<HeaderValue>,
    sender: String,
}

impl SmsGateway {
    /// Builds the client.
    pub fn new(s: GatewaySettings) -> Result<SmsGateway, String> {
        let authorization = s
            .authorization
            .map(|a| {
                let mut v = HeaderValue::from_str(&a).map_err(|_| {
                    "notify.sms_gateway.authorization is not a valid header value".to_string()
                })?;
                v.set_sensitive(true);
                Ok::<_, String>(v)
            })
            .transpose()?;
        let http = reqwest::Client::builder()
            .timeout(s.timeout)
            .connect_timeout(s.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("segl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("notify.sms_gateway: cannot build the HTTP client: {e}"))?;
        Ok(SmsGateway {
            http,
            url: s.url,
            authorization,
            sender: s.sender,
        })
    }

    /// Sends one SMS.
    pub async fn send(&self, m: &Message) -> Result<Accepted, SendError> {
        let mut req = self.http.post(self.url.clone()).json(&serde_json::json!({
            "to": m.recipient,
            "from": self.sender,
            "text": m.body,
        }));
        if let Some(a) = &self.authorization {
            req = req.header(AUTHORIZATION, a.clone());
        }
        // reqwest's errors name the URL, never the body; still, keep only what failed.
        let resp = req.send().await.map_err(|e| {
            SendError::Retry(if e.is_timeout() {
                "sms gateway: timeout".into()
            } else {
                "sms gateway: connection failed".into()
            })
        })?;
        let status = resp.status();
        if status.is_success() {
            // The id is optional: a gateway that answers 2xx took the message.
            let body = resp.bytes().await.unwrap_or_default();
            return Ok(Accepted {
                provider_id: gateway_id(&body),
            });
        }
        let code = status.as_u16();
        if status.is_server_error() || code == 408 || code == 429 {
            Err(SendError::Retry(format!("sms gateway: HTTP {code}")))
        } else {
            Err(SendError::Permanent(format!(
                "sms gateway: refused, HTTP {code}"
            )))
        }
    }
}

/// The `id` of a gateway's JSON answer (a string or a number), at most 200 characters.
fn gateway_id(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let id = match &v["id"] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!id.is_empty()).then(|| id.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(gateway_id(br#"{"id":"msg-1"}"#).as_deref(), Some("msg-1"));
        assert_eq!(gateway_id(br#"{"id":42}"#).as_deref(), Some("42"));
        assert_eq!(gateway_id(b"OK"), None);
        assert_eq!(gateway_id(br#"{"status":"ok"}"#), None);
    }
}
