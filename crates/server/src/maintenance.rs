//! Maintenance windows on the server (issue 5): refusing orders during a window, the
//! banner on every page, and `GET /api/v1/maintenance`.
//!
//! - [`ensure_open`]: what the ordering code calls before it takes an order; it reads the
//!   store itself, so a window is in force the moment `segl maintenance add` commits.
//! - [`Cache`]: the windows that have not ended, read from the store at most every
//!   [`CACHE_SECS`] seconds per node, so several nodes on one PostgreSQL each see a new
//!   window within seconds and a page costs no query.
//! - [`layer`] puts the cached windows in a task-local for the request, and
//!   `templates/base.html` calls [`banner`] to show them: no page struct carries them.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use segl_core::maintenance::{self as rules, Channel, Window};
use segl_store::Store;
use segl_store::db::Db;
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;
use crate::i18n::Lang;

/// How long a node serves the windows it read before it reads them again, seconds.
pub const CACHE_SECS: u64 = 5;

/// Refuses with [`ApiError::Maintenance`] (503, `Retry-After`) when a window closes
/// ordering on `channel` now. Call it before taking an order on that channel.
pub async fn ensure_open(state: &AppState, channel: Channel) -> Result<(), ApiError> {
    let mut c = state.store.read().await?;
    ensure_open_in(&mut c, channel, state.now()).await
}

/// [`ensure_open`] on a connection or inside a transaction ([`segl_store::Store::transact`]),
/// so the check and the order are one step.
pub async fn ensure_open_in(c: &mut impl Db, channel: Channel, now: i64) -> Result<(), ApiError> {
    let windows = windows_of(segl_store::maintenance::current(c, now).await?);
    match rules::closed(&windows, channel, now) {
        None => Ok(()),
        Some(closed) => Err(ApiError::Maintenance {
            message: closed.window.message().to_string(),
            retry_after: u64::try_from(closed.reopens_at - now).unwrap_or(1).max(1),
        }),
    }
}

fn windows_of(stored: Vec<segl_store::maintenance::Stored>) -> Vec<Window> {
    stored.into_iter().map(|s| s.window).collect()
}

/// The windows that had not ended when last read, shared by the requests of one node.
pub struct Cache {
    /// How long a read is served.
    ttl: Duration,
    /// The last read and when it was made (`None`: never).
    last: RwLock<(Option<Instant>, Arc<Vec<Window>>)>,
    /// One read at a time; the others wait for it rather than read too.
    reading: tokio::sync::Mutex<()>,
}

impl Default for Cache {
    fn default() -> Self {
        Cache::new(Duration::from_secs(CACHE_SECS))
    }
}

impl Cache {
    /// An empty cache whose reads are served for `ttl`.
    pub fn new(ttl: Duration) -> Cache {
        Cache {
            ttl,
            last: RwLock::new((None, Arc::default())),
            reading: tokio::sync::Mutex::new(()),
        }
    }

    fn fresh(&self) -> Option<Arc<Vec<Window>>> {
        let last = self.last.read().unwrap_or_else(|e| e.into_inner());
        match last.0 {
            Some(at) if at.elapsed() < self.ttl => Some(last.1.clone()),
            _ => None,
        }
    }

    /// The windows that have not ended, read from the store when the last read is older
    /// than the cache time. If the store fails, the last windows read are kept (and the
    /// failure logged), and the next read is tried after the cache time.
    pub async fn windows(&self, store: &Store, now: i64) -> Arc<Vec<Window>> {
        if let Some(w) = self.fresh() {
            return w;
        }
        let _reading = self.reading.lock().await;
        if let Some(w) = self.fresh() {
            return w;
        }
        let read = async {
            let mut c = store.read().await?;
            segl_store::maintenance::current(&mut c, now).await
        }
        .await;
        let mut last = self.last.write().unwrap_or_else(|e| e.into_inner());
        last.0 = Some(Instant::now());
        match read {
            Ok(list) => last.1 = Arc::new(windows_of(list)),
            Err(e) => {
                tracing::warn!(error = %e, "reading maintenance windows failed; the last ones read stay shown");
            }
        }
        last.1.clone()
    }
}

/// What the banner of a request shows: the cached windows and the request's time.
#[derive(Clone)]
struct Current {
    windows: Arc<Vec<Window>>,
    now: i64,
}

tokio::task_local! {
    static CURRENT: Current;
}

/// Middleware: makes the windows (from the [`Cache`]) available to [`banner`] while the
/// request is handled.
pub async fn layer(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let now = st.now();
    let windows = st.maintenance.windows(&st.store, now).await;
    CURRENT.scope(Current { windows, now }, next.run(req)).await
}

/// The banner as the pages show it.
pub struct Banner {
    /// The banner's name for screen readers.
    pub label: &'static str,
    /// One line per window.
    pub notices: Vec<BannerNotice>,
}

/// One window in the banner.
pub struct BannerNotice {
    /// For a window that has not started: "Planned maintenance from … to … (Norwegian
    /// time)"; empty for an active one.
    pub planned: String,
    /// The operator's message.
    pub message: String,
}

/// The banner of the current request in the page's language (a tag: `nb`, `nn`, `en`):
/// active windows and those starting within 24 hours. Empty outside a request that passed
/// [`layer`]. Called by `templates/base.html`.
pub fn banner(lang: impl AsRef<str>) -> Banner {
    let lang = Lang::parse(lang.as_ref()).unwrap_or(Lang::Nb);
    let t = lang.t();
    let notices = CURRENT
        .try_with(|cur| {
            rules::banner(&cur.windows, cur.now)
                .into_iter()
                .map(|n| BannerNotice {
                    planned: if n.upcoming {
                        format!(
                            "{} {} {} {} ({})",
                            t.maintenance_planned_from,
                            local_time(lang, n.window.from()),
                            t.maintenance_planned_to,
                            local_time(lang, n.window.to()),
                            t.maintenance_time_zone
                        )
                    } else {
                        String::new()
                    },
                    message: n.window.message().to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    Banner {
        label: t.maintenance_label,
        notices,
    }
}

/// The first second of European summer time in `year` (last Sunday of `month`, 01:00 UTC).
fn last_sunday_0100_utc(year: i32, month: time::Month) -> Option<i64> {
    // March and October both have 31 days.
    let last = time::Date::from_calendar_date(year, month, 31).ok()?;
    let back = i64::from(last.weekday().number_days_from_sunday());
    let day = last.checked_sub(time::Duration::days(back))?;
    Some(day.with_hms(1, 0, 0).ok()?.assume_utc().unix_timestamp())
}

/// A time as people in Norway read it: Norwegian time (CET, CEST in summer).
fn local_time(lang: Lang, t: i64) -> String {
    let Ok(utc) = time::OffsetDateTime::from_unix_timestamp(t) else {
        return String::new();
    };
    let year = utc.year();
    let summer = match (
        last_sunday_0100_utc(year, time::Month::March),
        last_sunday_0100_utc(year, time::Month::October),
    ) {
        (Some(start), Some(end)) => (start..end).contains(&t),
        _ => false,
    };
    let offset =
        time::UtcOffset::from_hms(if summer { 2 } else { 1 }, 0, 0).unwrap_or(time::UtcOffset::UTC);
    let local = utc.to_offset(offset);
    let formatted = match lang {
        Lang::Nb | Lang::Nn => local.format(time::macros::format_description!(
            "[day].[month].[year] kl. [hour].[minute]"
        )),
        Lang::En => local.format(time::macros::format_description!(
            "[day padding:none] [month repr:short] [year], [hour]:[minute]"
        )),
    };
    formatted.unwrap_or_default()
}

/// The public routes: `GET /api/v1/maintenance`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/maintenance", get(list))
}

/// The windows that are on or still to come, for apps and pages:
/// `{"windows": [{id, channel, from, to, message, active}]}` with RFC 3339 times.
async fn list(State(st): State<AppState>) -> Response {
    let now = st.now();
    let windows = st.maintenance.windows(&st.store, now).await;
    let v: Vec<_> = windows
        .iter()
        .filter(|w| !w.has_ended(now))
        .map(|w| {
            json!({
                "id": w.id(),
                "channel": w.channel(),
                "from": crate::flow::rfc3339(w.from()),
                "to": crate::flow::rfc3339(w.to()),
                "message": w.message(),
                "active": w.is_active(now),
            })
        })
        .collect();
    let mut resp = Json(json!({ "windows": v })).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=5"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::StatusCode;
    use segl_crypto::jose::KeyRing;
    use segl_crypto::password::{Argon2Params, PasswordHasher};
    use segl_crypto::seal::SealKey;
    use tower::ServiceExt;

    const NOW: i64 = 1_798_149_600; // 2026-12-24T22:00:00Z

    async fn state(dir: &std::path::Path) -> AppState {
        let url = segl_store::sqlite_url(&dir.join("t.db"));
        let store = Store::open(&url, SealKey::from_bytes(&[7u8; 32]).unwrap())
            .await
            .unwrap();
        let keys = KeyRing::load_or_create(&dir.join("keys")).unwrap();
        let settings = crate::Settings {
            issuer: "http://127.0.0.1:9".into(),
            policy: Default::default(),
            cookie_secure: false,
            max_body_bytes: 1 << 20,
            sign: Default::default(),
        };
        let hasher = PasswordHasher::new(Argon2Params::default()).unwrap();
        let mut st = AppState::new(store, keys, settings, hasher);
        st.clock = Arc::new(|| NOW);
        // Read the store on every request, so each step sees the last change.
        st.maintenance = Arc::new(Cache::new(Duration::ZERO));
        st
    }

    async fn add(st: &AppState, id: &str, channel: Channel, from: i64, to: i64, msg: &str) {
        let w = Window::new(id, channel, from, to, msg, NOW).unwrap();
        let mut c = st.store.conn().await.unwrap();
        segl_store::maintenance::insert(&mut c, &w, "test", NOW)
            .await
            .unwrap();
    }

    async fn body(r: Response) -> String {
        let b = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn ensure_open_refuses_during_a_window_with_retry_after() {
        let dir = tempfile::tempdir().unwrap();
        let st = state(dir.path()).await;
        assert!(ensure_open(&st, Channel::OrderApp).await.is_ok());

        add(
            &st,
            "card",
            Channel::OrderCard,
            NOW - 60,
            NOW + 60,
            "Kort: vedlikehold",
        )
        .await;
        add(&st, "later", Channel::Order, NOW + 1, NOW + 100, "Senere").await;
        assert!(
            ensure_open(&st, Channel::OrderApp).await.is_ok(),
            "a card window leaves the app open, and one starting in a second is not on yet"
        );
        let e = ensure_open(&st, Channel::OrderCard).await.unwrap_err();
        let r = e.into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        // The card window runs into the `order` window (no gap): open again at its end.
        assert_eq!(r.headers()[header::RETRY_AFTER], "100");
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let p: serde_json::Value = serde_json::from_str(&body(r).await).unwrap();
        assert_eq!(p["code"], "maintenance");
        assert_eq!(p["type"], "urn:segl:problem:maintenance");
        assert_eq!(p["status"], 503);
        assert_eq!(p["detail"], "Kort: vedlikehold");

        add(&st, "all", Channel::Order, NOW, NOW + 3600, "Alt stengt").await;
        let e = ensure_open(&st, Channel::OrderApp).await.unwrap_err();
        let (status, code, detail, _) = e.parts();
        assert_eq!((status.as_u16(), code), (503, "maintenance"));
        assert_eq!(detail, "Alt stengt");

        // Ended: open again at exactly `to`.
        let mut later = st.clone();
        later.clock = Arc::new(|| NOW + 3600);
        assert!(ensure_open(&later, Channel::OrderApp).await.is_ok());
    }

    #[tokio::test]
    async fn pages_show_the_banner_and_the_api_lists_windows() {
        let dir = tempfile::tempdir().unwrap();
        let st = state(dir.path()).await;
        let app = crate::router(st.clone());
        let get = |path: &str, lang: &str| {
            Request::builder()
                .uri(path)
                .header(header::ACCEPT_LANGUAGE, lang)
                .body(Body::empty())
                .unwrap()
        };

        let page = body(app.clone().oneshot(get("/login", "nb")).await.unwrap()).await;
        assert!(
            !page.contains("role=\"status\""),
            "no window, no banner: {page}"
        );
        let r = app
            .clone()
            .oneshot(get("/api/v1/maintenance", "nb"))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(body(r).await, r#"{"windows":[]}"#);

        add(
            &st,
            "now",
            Channel::OrderApp,
            NOW - 60,
            NOW + 60,
            "Bestilling <stengt> nå",
        )
        .await;
        // 2026-12-25T08:00Z is 09.00 Norwegian (winter) time.
        add(
            &st,
            "soon",
            Channel::Order,
            NOW + 10 * 3600,
            NOW + 11 * 3600,
            "Juledag",
        )
        .await;
        add(
            &st,
            "far",
            Channel::Order,
            NOW + 2 * 86_400,
            NOW + 3 * 86_400,
            "Langt fram",
        )
        .await;

        let page = body(app.clone().oneshot(get("/login", "nb")).await.unwrap()).await;
        assert!(page.contains("role=\"status\""), "{page}");
        assert!(page.contains("aria-label=\"Driftsmelding\""), "{page}");
        assert!(
            page.contains("Bestilling &#60;stengt&#62; nå")
                || page.contains("Bestilling &lt;stengt&gt; nå"),
            "the message, escaped: {page}"
        );
        assert!(
            page.contains(
                "Planlagt vedlikehold fra 25.12.2026 kl. 09.00 til 25.12.2026 kl. 10.00 (norsk tid)"
            ),
            "{page}"
        );
        assert!(page.contains("Juledag"), "{page}");
        assert!(
            !page.contains("Langt fram"),
            "more than 24 hours ahead: {page}"
        );
        let en = body(app.clone().oneshot(get("/login", "en")).await.unwrap()).await;
        assert!(
            en.contains(
                "Planned maintenance from 25 Dec 2026, 09:00 to 25 Dec 2026, 10:00 (Norwegian time)"
            ),
            "{en}"
        );

        let r = app
            .clone()
            .oneshot(get("/api/v1/maintenance", "nb"))
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&body(r).await).unwrap();
        let w = v["windows"].as_array().unwrap();
        assert_eq!(w.len(), 3, "{v}");
        assert_eq!(w[0]["id"], "now");
        assert_eq!(w[0]["channel"], "order-app");
        assert_eq!(w[0]["active"], true);
        assert_eq!(w[0]["from"], "2026-12-24T21:59:00Z");
        assert_eq!(w[1]["active"], false);
        assert_eq!(w[2]["id"], "far");
    }

    #[test]
    fn norwegian_time_follows_summer_time() {
        // 2026: summer time from 29 March 01:00 UTC to 25 October 01:00 UTC.
        let at = |s: &str| rules::parse_time(s, 0).unwrap();
        assert_eq!(
            local_time(Lang::Nb, at("2026-03-29T00:59:59Z")),
            "29.03.2026 kl. 01.59"
        );
        assert_eq!(
            local_time(Lang::Nb, at("2026-03-29T01:00:00Z")),
            "29.03.2026 kl. 03.00"
        );
        assert_eq!(
            local_time(Lang::Nb, at("2026-10-25T00:59:00Z")),
            "25.10.2026 kl. 02.59"
        );
        assert_eq!(
            local_time(Lang::Nb, at("2026-10-25T01:00:00Z")),
            "25.10.2026 kl. 02.00"
        );
        assert_eq!(
            local_time(Lang::En, at("2026-07-01T10:00:00Z")),
            "1 Jul 2026, 12:00"
        );
    }

    #[test]
    fn no_banner_outside_a_request() {
        let b = banner("en");
        assert!(b.notices.is_empty());
        assert_eq!(b.label, "Service notice");
    }
}
