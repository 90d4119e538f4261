//! Maintenance windows (issue 5): an operator closes ordering on a channel for a while, with
//! a message people read. During a window, ordering on that channel is refused and the
//! pages show the message; login, signing, renewal and existing eIDs work as usual.
//!
//! Pure rules: the caller passes `now` (unix seconds). A window covers `[from, to)`: it is
//! active from its first second up to, but not including, its end.

use serde::Serialize;

/// Longest message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 500;

/// How far ahead a window is announced on the pages, seconds.
pub const UPCOMING_SECS: i64 = 86_400;

/// Errors of a window's input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MaintenanceError {
    /// The channel is not one segl knows.
    #[error("unknown channel '{0}' (use order-app, order-card or order)")]
    UnknownChannel(String),
    /// A time is neither RFC 3339 nor `now`.
    #[error("'{0}' is not a time (use RFC 3339 such as 2026-12-24T22:00:00Z, or now)")]
    BadTime(String),
    /// The end is not after the start.
    #[error("the window must end after it starts")]
    EndsBeforeStart,
    /// The end has passed already.
    #[error("the window has ended already")]
    EndsInPast,
    /// The message is empty (or only white space).
    #[error("the message is empty")]
    EmptyMessage,
    /// The message is longer than [`MAX_MESSAGE_CHARS`].
    #[error("the message has {0} characters, more than {MAX_MESSAGE_CHARS}")]
    MessageTooLong(usize),
    /// The message has a control character (a line break, a tab, …).
    #[error("the message contains a control character (line break, tab or similar)")]
    ControlCharacter,
}

/// A way to order an eID that a window can close.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Channel {
    /// Ordering an eID to be used with the app.
    OrderApp,
    /// Ordering an eID with a code device (or card) sent by letter.
    OrderCard,
    /// Every ordering channel: a window on it closes all of them.
    Order,
}

impl Channel {
    /// Every channel, in the order the docs list them.
    pub const ALL: [Channel; 3] = [Channel::OrderApp, Channel::OrderCard, Channel::Order];

    /// The channel's name (`order-app`, `order-card`, `order`).
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::OrderApp => "order-app",
            Channel::OrderCard => "order-card",
            Channel::Order => "order",
        }
    }

    /// Parses a channel's name.
    pub fn parse(s: &str) -> Result<Channel, MaintenanceError> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| MaintenanceError::UnknownChannel(s.to_string()))
    }

    /// Whether a window on `self` closes ordering on `asked`: `order` closes every channel,
    /// any other only itself.
    pub fn covers(self, asked: Channel) -> bool {
        self == Channel::Order || self == asked
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses a time given by an operator: RFC 3339 (`2026-12-24T22:00:00Z`,
/// `2026-12-24T23:00:00+01:00`) or `now`; unix seconds.
pub fn parse_time(s: &str, now: i64) -> Result<i64, MaintenanceError> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .map(|d| d.unix_timestamp())
        .map_err(|_| MaintenanceError::BadTime(s.to_string()))
}

/// Checks a message and returns it trimmed.
pub fn check_message(message: &str) -> Result<String, MaintenanceError> {
    let m = message.trim();
    if m.is_empty() {
        return Err(MaintenanceError::EmptyMessage);
    }
    if m.chars().any(char::is_control) {
        return Err(MaintenanceError::ControlCharacter);
    }
    let n = m.chars().count();
    if n > MAX_MESSAGE_CHARS {
        return Err(MaintenanceError::MessageTooLong(n));
    }
    Ok(m.to_string())
}

/// A maintenance window: ordering on `channel` is closed during `[from, to)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Window {
    id: String,
    channel: Channel,
    from: i64,
    to: i64,
    message: String,
}

impl Window {
    /// A new window, as an operator adds it: `from < to`, `to` after `now`, and a message of
    /// 1 to 500 characters without control characters (trimmed).
    pub fn new(
        id: impl Into<String>,
        channel: Channel,
        from: i64,
        to: i64,
        message: &str,
        now: i64,
    ) -> Result<Window, MaintenanceError> {
        let w = Window::restore(id, channel, from, to, message)?;
        if to <= now {
            return Err(MaintenanceError::EndsInPast);
        }
        Ok(w)
    }

    /// A window read back from storage: the same rules as [`Window::new`] except the end in
    /// the future (a stored window may have ended since).
    pub fn restore(
        id: impl Into<String>,
        channel: Channel,
        from: i64,
        to: i64,
        message: &str,
    ) -> Result<Window, MaintenanceError> {
        if to <= from {
            return Err(MaintenanceError::EndsBeforeStart);
        }
        Ok(Window {
            id: id.into(),
            channel,
            from,
            to,
            message: check_message(message)?,
        })
    }

    /// The window's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The channel it closes.
    pub fn channel(&self) -> Channel {
        self.channel
    }

    /// Its first second (unix seconds).
    pub fn from(&self) -> i64 {
        self.from
    }

    /// Its end (unix seconds): the first second that is open again.
    pub fn to(&self) -> i64 {
        self.to
    }

    /// What people read.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether it is on at `now`.
    pub fn is_active(&self, now: i64) -> bool {
        self.from <= now && now < self.to
    }

    /// Whether it starts later, within [`UPCOMING_SECS`] of `now`.
    pub fn is_upcoming(&self, now: i64) -> bool {
        now < self.from && self.from - now <= UPCOMING_SECS
    }

    /// Whether it has ended at `now`.
    pub fn has_ended(&self, now: i64) -> bool {
        self.to <= now
    }

    /// Whether it closes ordering on `channel` at `now`.
    pub fn closes(&self, channel: Channel, now: i64) -> bool {
        self.is_active(now) && self.channel.covers(channel)
    }
}

/// A window the pages announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notice<'a> {
    /// The window.
    pub window: &'a Window,
    /// It has not started yet ("Planned maintenance from … to …").
    pub upcoming: bool,
}

/// The windows the pages show at `now`: the active ones and those starting within the next
/// 24 hours (flagged as upcoming), by start.
pub fn banner(windows: &[Window], now: i64) -> Vec<Notice<'_>> {
    let mut out: Vec<Notice<'_>> = windows
        .iter()
        .filter_map(|w| {
            if w.is_active(now) {
                Some(Notice {
                    window: w,
                    upcoming: false,
                })
            } else if w.is_upcoming(now) {
                Some(Notice {
                    window: w,
                    upcoming: true,
                })
            } else {
                None
            }
        })
        .collect();
    out.sort_by_key(|n| (n.window.from, n.window.to));
    out
}

/// Why ordering on a channel is closed, and until when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Closed<'a> {
    /// The active window that closes it and lasts longest (its message is shown).
    pub window: &'a Window,
    /// When ordering opens again: the end of this window, or later when windows closing
    /// the same channel follow on without a gap.
    pub reopens_at: i64,
}

/// Whether ordering on `channel` is closed at `now`, by which window and until when.
pub fn closed(windows: &[Window], channel: Channel, now: i64) -> Option<Closed<'_>> {
    let window = windows
        .iter()
        .filter(|w| w.closes(channel, now))
        .max_by_key(|w| (w.to, std::cmp::Reverse(w.from)))?;
    let mut reopens_at = window.to;
    // Windows that start before the current end (or exactly at it) extend the closure.
    while let Some(next) = windows
        .iter()
        .filter(|w| w.channel.covers(channel) && w.from <= reopens_at && w.to > reopens_at)
        .map(|w| w.to)
        .max()
    {
        reopens_at = next;
    }
    Some(Closed { window, reopens_at })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn w(id: &str, channel: Channel, from: i64, to: i64) -> Window {
        Window::restore(id, channel, from, to, "Planlagt vedlikehold").unwrap()
    }

    #[test]
    fn channels_parse_and_print() {
        for c in Channel::ALL {
            assert_eq!(Channel::parse(c.as_str()), Ok(c));
            assert_eq!(c.to_string(), c.as_str());
        }
        assert_eq!(
            Channel::parse("order-phone"),
            Err(MaintenanceError::UnknownChannel("order-phone".into()))
        );
        assert!(Channel::parse("Order-App").is_err(), "names are exact");
        assert!(Channel::parse("").is_err());
    }

    #[test]
    fn order_covers_every_ordering_channel() {
        assert!(Channel::Order.covers(Channel::OrderApp));
        assert!(Channel::Order.covers(Channel::OrderCard));
        assert!(Channel::Order.covers(Channel::Order));
        assert!(Channel::OrderApp.covers(Channel::OrderApp));
        assert!(!Channel::OrderApp.covers(Channel::OrderCard));
        assert!(!Channel::OrderCard.covers(Channel::OrderApp));
        assert!(!Channel::OrderApp.covers(Channel::Order));
    }

    #[test]
    fn times_are_rfc3339_or_now() {
        assert_eq!(parse_time("now", NOW), Ok(NOW));
        assert_eq!(parse_time(" NOW ", NOW), Ok(NOW));
        assert_eq!(parse_time("2026-12-24T22:00:00Z", NOW), Ok(1_798_149_600));
        assert_eq!(
            parse_time("2026-12-24T23:00:00+01:00", NOW),
            Ok(1_798_149_600)
        );
        for bad in [
            "",
            "tomorrow",
            "2026-12-24",
            "2026-12-24 22:00",
            "1798149600",
        ] {
            assert_eq!(
                parse_time(bad, NOW),
                Err(MaintenanceError::BadTime(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn new_windows_follow_the_rules() {
        let c = Channel::OrderApp;
        assert!(Window::new("a", c, NOW, NOW + 1, "x", NOW).is_ok());
        assert!(
            Window::new("a", c, NOW - 60, NOW + 1, "x", NOW).is_ok(),
            "a start in the past is fine"
        );
        assert_eq!(
            Window::new("a", c, NOW + 10, NOW + 10, "x", NOW),
            Err(MaintenanceError::EndsBeforeStart)
        );
        assert_eq!(
            Window::new("a", c, NOW + 10, NOW + 9, "x", NOW),
            Err(MaintenanceError::EndsBeforeStart)
        );
        assert_eq!(
            Window::new("a", c, NOW - 10, NOW, "x", NOW),
            Err(MaintenanceError::EndsInPast),
            "ending exactly now is in the past"
        );
        assert!(
            Window::restore("a", c, NOW - 10, NOW, "x").is_ok(),
            "a stored window may have ended"
        );
    }

    #[test]
    fn messages_are_checked_and_trimmed() {
        assert_eq!(check_message("  Vedlikehold  "), Ok("Vedlikehold".into()));
        assert_eq!(check_message(""), Err(MaintenanceError::EmptyMessage));
        assert_eq!(check_message(" \t "), Err(MaintenanceError::EmptyMessage));
        assert_eq!(
            check_message("a\nb"),
            Err(MaintenanceError::ControlCharacter)
        );
        assert_eq!(
            check_message("a\u{7}b"),
            Err(MaintenanceError::ControlCharacter)
        );
        assert_eq!(
            check_message("a\u{85}b"),
            Err(MaintenanceError::ControlCharacter)
        );
        let max = "æ".repeat(MAX_MESSAGE_CHARS);
        assert_eq!(check_message(&max), Ok(max.clone()), "500 characters");
        assert_eq!(
            check_message(&format!("{max}ø")),
            Err(MaintenanceError::MessageTooLong(501))
        );
    }

    #[test]
    fn a_window_is_active_from_its_start_up_to_its_end() {
        let x = w("a", Channel::OrderApp, NOW, NOW + 3600);
        assert!(!x.is_active(NOW - 1));
        assert!(x.is_active(NOW), "exactly at from");
        assert!(x.is_active(NOW + 3599));
        assert!(!x.is_active(NOW + 3600), "exactly at to");
        assert!(x.has_ended(NOW + 3600));
        assert!(!x.has_ended(NOW + 3599));
        assert!(x.closes(Channel::OrderApp, NOW));
        assert!(!x.closes(Channel::OrderApp, NOW + 3600));
        assert!(!x.closes(Channel::OrderCard, NOW));
        let all = w("b", Channel::Order, NOW, NOW + 60);
        assert!(all.closes(Channel::OrderApp, NOW));
        assert!(all.closes(Channel::OrderCard, NOW + 59));
        assert!(!all.closes(Channel::OrderCard, NOW + 60));
    }

    #[test]
    fn upcoming_is_the_next_24_hours() {
        let x = w(
            "a",
            Channel::Order,
            NOW + UPCOMING_SECS,
            NOW + UPCOMING_SECS + 60,
        );
        assert!(x.is_upcoming(NOW), "exactly 24 hours ahead");
        assert!(!x.is_upcoming(NOW - 1), "more than 24 hours ahead");
        assert!(
            !x.is_upcoming(NOW + UPCOMING_SECS),
            "started: active, not upcoming"
        );
        assert!(x.is_upcoming(NOW + UPCOMING_SECS - 1));
    }

    #[test]
    fn the_banner_shows_active_and_upcoming_by_start() {
        let windows = vec![
            w("later", Channel::OrderCard, NOW + 7200, NOW + 9000),
            w("ended", Channel::Order, NOW - 600, NOW),
            w("active", Channel::OrderApp, NOW - 60, NOW + 60),
            w(
                "far",
                Channel::Order,
                NOW + UPCOMING_SECS + 1,
                NOW + 2 * UPCOMING_SECS,
            ),
            w("starts", Channel::Order, NOW, NOW + 1),
        ];
        let b = banner(&windows, NOW);
        let seen: Vec<(&str, bool)> = b.iter().map(|n| (n.window.id(), n.upcoming)).collect();
        assert_eq!(
            seen,
            vec![("active", false), ("starts", false), ("later", true)]
        );
        assert!(banner(&windows, NOW + 3 * UPCOMING_SECS).is_empty());
        assert!(banner(&[], NOW).is_empty());
    }

    #[test]
    fn closed_names_the_window_and_when_ordering_reopens() {
        let windows = vec![
            w("app", Channel::OrderApp, NOW - 60, NOW + 600),
            // Follows on exactly at the end: ordering stays closed.
            w("all", Channel::Order, NOW + 600, NOW + 1200),
            // A gap of a second: ordering reopens in between.
            w("gap", Channel::OrderApp, NOW + 1201, NOW + 5000),
            w("card", Channel::OrderCard, NOW - 60, NOW + 60),
        ];
        let c = closed(&windows, Channel::OrderApp, NOW).expect("closed");
        assert_eq!(c.window.id(), "app");
        assert_eq!(c.reopens_at, NOW + 1200);
        let c = closed(&windows, Channel::OrderCard, NOW).expect("closed");
        assert_eq!(c.window.id(), "card");
        assert_eq!(c.reopens_at, NOW + 60);
        assert!(closed(&windows, Channel::OrderCard, NOW + 60).is_none());
        let c = closed(&windows, Channel::OrderCard, NOW + 600).expect("order closes cards");
        assert_eq!(c.window.id(), "all");
        assert!(
            closed(&windows, Channel::OrderApp, NOW + 1200).is_none(),
            "the gap"
        );
        assert!(closed(&windows, Channel::OrderApp, NOW - 61).is_none());
        assert!(closed(&[], Channel::Order, NOW).is_none());
    }

    #[test]
    fn overlapping_windows_show_the_longest() {
        let windows = vec![
            w("short", Channel::Order, NOW - 10, NOW + 10),
            w("long", Channel::OrderApp, NOW - 5, NOW + 100),
        ];
        let c = closed(&windows, Channel::OrderApp, NOW).unwrap();
        assert_eq!((c.window.id(), c.reopens_at), ("long", NOW + 100));
        let c = closed(&windows, Channel::OrderCard, NOW).unwrap();
        assert_eq!((c.window.id(), c.reopens_at), ("short", NOW + 10));
    }
}
