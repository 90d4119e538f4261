//! The store's rules, run against SQLite always and against PostgreSQL when
//! `SEGL_TEST_POSTGRES_URL` names an admin connection (each run in a fresh database,
//! dropped at the end). In CI (`CI` set) a missing PostgreSQL fails the test.

use segl_crypto::otp::OtpAlgorithm;
use segl_crypto::pskc::{PskcToken, TokenKind};
use segl_crypto::seal::SealKey;
use segl_store::audit::{self, Event};
use segl_store::db::{Body, Txn};
use segl_store::grants::{self, Redeem, TokenRow};
use segl_store::persons::{self, Person};
use segl_store::{Backend, Store, StoreError, devices, flows, sqlite_url};
use serde_json::json;

struct Db {
    store: Store,
    url: String,
    _dir: tempfile::TempDir,
    drop_pg: Option<(String, String)>,
}

impl Db {
    /// Closes the store and opens the same database again, as a restart would.
    async fn reopen(&self) -> Store {
        self.store.close().await;
        Store::open(&self.url, SealKey::from_bytes(&[7u8; 32]).unwrap())
            .await
            .unwrap()
    }

    async fn close(self) {
        self.store.close().await;
        if let Some((admin, name)) = self.drop_pg {
            let store_admin = sqlx_admin(&admin).await;
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&store_admin)
            .await;
        }
    }
}

async fn sqlx_admin(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(url)
        .await
        .expect("admin connection to PostgreSQL")
}

async fn backends() -> Vec<Db> {
    let mut out = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("t.db"));
    out.push(Db {
        store: Store::open(&url, SealKey::from_bytes(&[7u8; 32]).unwrap())
            .await
            .unwrap(),
        url,
        _dir: dir,
        drop_pg: None,
    });
    match std::env::var("SEGL_TEST_POSTGRES_URL") {
        Ok(admin) => {
            let name = format!(
                "segl_store_{}_{}",
                std::process::id(),
                segl_crypto::random::random_digits(8)
            );
            let pool = sqlx_admin(&admin).await;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&pool)
                .await
                .unwrap();
            let mut u = url::Url::parse(&admin).unwrap();
            u.set_path(&name);
            let dir = tempfile::tempdir().unwrap();
            out.push(Db {
                store: Store::open(u.as_str(), SealKey::from_bytes(&[7u8; 32]).unwrap())
                    .await
                    .unwrap(),
                url: u.to_string(),
                _dir: dir,
                drop_pg: Some((admin, name)),
            });
        }
        Err(_) if std::env::var("CI").is_ok() => panic!("SEGL_TEST_POSTGRES_URL is required in CI"),
        Err(_) => eprintln!("skipping PostgreSQL: SEGL_TEST_POSTGRES_URL not set"),
    }
    out
}

fn person(nin: &str) -> Person {
    Person {
        id: uuid::Uuid::new_v4().to_string(),
        sub: uuid::Uuid::new_v4().to_string(),
        nin: nin.into(),
        name: "Kari Nordmann".into(),
        birthdate: "1985-05-15".into(),
        phone: None,
        email: None,
        created_at: 1,
    }
}

/// The audit chain's length, after checking it is unbroken.
async fn intact_chain(c: &mut segl_store::Conn) -> i64 {
    let report = audit::verify(c).await.unwrap();
    assert!(report.ok, "{report:?}");
    report.entries
}

async fn append(store: &Store, event: &str, n: i64) {
    let mut tx = store.begin().await.unwrap();
    audit::append(
        &mut tx,
        &Event {
            event,
            subject: None,
            client_id: None,
            data: json!({"n": n}),
        },
        1000 + n,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn audit_chain_detects_edit_delete_and_truncation() {
    for db in backends().await {
        let s = &db.store;
        for n in 1..=5 {
            append(s, "test.event", n).await;
        }
        let mut c = s.conn().await.unwrap();
        let r = audit::verify(&mut c).await.unwrap();
        assert!(r.ok, "{} {r:?}", db.url);
        assert_eq!(r.entries, 5);

        // Edit entry 3's data: the chain breaks at 3.
        sqlx::query("UPDATE audit_log SET data = '{\"n\":99}' WHERE seq = 3")
            .execute(&mut *c)
            .await
            .unwrap();
        let r = audit::verify(&mut c).await.unwrap();
        assert!(!r.ok);
        assert_eq!(r.first_broken, Some(3), "{r:?}");

        // Restore, then delete entry 2: a gap at 2.
        sqlx::query("UPDATE audit_log SET data = '{\"n\":3}' WHERE seq = 3")
            .execute(&mut *c)
            .await
            .unwrap();
        assert!(audit::verify(&mut c).await.unwrap().ok);
        sqlx::query("DELETE FROM audit_log WHERE seq = 2")
            .execute(&mut *c)
            .await
            .unwrap();
        let r = audit::verify(&mut c).await.unwrap();
        assert_eq!(r.first_broken, Some(2), "{r:?}");
        drop(c);
        db.close().await;
    }

    for db in backends().await {
        let s = &db.store;
        for n in 1..=3 {
            append(s, "test.event", n).await;
        }
        let mut c = s.conn().await.unwrap();
        // Cut the last entry off: the head is ahead of the log.
        sqlx::query("DELETE FROM audit_log WHERE seq = 3")
            .execute(&mut *c)
            .await
            .unwrap();
        let r = audit::verify(&mut c).await.unwrap();
        assert!(!r.ok);
        assert_eq!(r.first_broken, Some(3), "{r:?}");
        drop(c);
        db.close().await;
    }
}

#[tokio::test]
async fn concurrent_audit_appends_stay_one_chain() {
    for db in backends().await {
        let mut tasks = Vec::new();
        for n in 0..20 {
            let s = db.store.clone();
            tasks.push(tokio::spawn(async move { append(&s, "race", n).await }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut c = db.store.conn().await.unwrap();
        let r = audit::verify(&mut c).await.unwrap();
        assert!(r.ok, "{r:?}");
        assert_eq!(r.entries, 20);
        drop(c);
        db.close().await;
    }
}

/// On PostgreSQL the entry's hash is computed in SQL (`audit_chain_hash`) and checked by
/// `verify` in Rust: both must encode every string alike, control characters and quotes
/// included, and with and without a subject and a client.
#[tokio::test]
async fn audit_hashes_agree_for_awkward_text() {
    let controls: String = (1u8..0x20).map(char::from).collect();
    let texts = [
        controls.as_str(),
        "quote \" backslash \\ slash / del \u{7f}",
        "æøå ÆØÅ 😀 \u{2028}\u{2029} \u{fffd}",
        "",
        "null",
        "{\"json\": [1, 2]}",
    ];
    for db in backends().await {
        let mut tx = db.store.begin().await.unwrap();
        for (i, t) in texts.iter().enumerate() {
            for (subject, client) in [(None, None), (Some(*t), Some(*t))] {
                audit::append(
                    &mut tx,
                    &Event {
                        event: t,
                        subject,
                        client_id: client,
                        data: json!({"text": t, "n": i}),
                    },
                    i64::MAX - i as i64,
                )
                .await
                .unwrap();
            }
        }
        tx.commit().await.unwrap();
        let mut c = db.store.conn().await.unwrap();
        assert_eq!(
            intact_chain(&mut c).await,
            2 * texts.len() as i64,
            "{}",
            db.url
        );
        let last = audit::latest(&mut c, 1).await.unwrap();
        assert_eq!(last[0].seq, 2 * texts.len() as i64);
        assert_eq!(last[0].subject.as_deref(), Some(texts[texts.len() - 1]));
        drop(c);
        db.close().await;
    }
}

#[tokio::test]
async fn duplicate_person_is_refused_and_nothing_changes() {
    for db in backends().await {
        let mut tx = db.store.begin().await.unwrap();
        persons::insert(&mut tx, &person("15058500027"))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut tx = db.store.begin().await.unwrap();
        let err = persons::insert(&mut tx, &person("15058500027"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Duplicate(_)), "{err:?}");
        drop(tx);
        let mut c = db.store.conn().await.unwrap();
        assert_eq!(persons::count(&mut c).await.unwrap(), 1);
        drop(c);
        db.close().await;
    }
}

#[tokio::test]
async fn password_lock_counts_atomically() {
    for db in backends().await {
        let p = person("15058500027");
        let mut c = db.store.conn().await.unwrap();
        persons::insert(&mut c, &p).await.unwrap();
        persons::set_password(&mut c, &p.id, "$argon2id$fake", 1)
            .await
            .unwrap();
        for i in 1..=4 {
            assert_eq!(
                persons::password_failed(&mut c, &p.id, 5).await.unwrap(),
                (i, false)
            );
        }
        assert_eq!(
            persons::password_failed(&mut c, &p.id, 5).await.unwrap(),
            (5, true)
        );
        assert!(
            persons::password(&mut c, &p.id)
                .await
                .unwrap()
                .unwrap()
                .locked
        );
        assert!(persons::unlock_password(&mut c, &p.id).await.unwrap());
        let r = persons::password(&mut c, &p.id).await.unwrap().unwrap();
        assert!(!r.locked);
        assert_eq!(r.failures, 0);
        drop(c);
        db.close().await;
    }
}

fn token(serial: &str) -> PskcToken {
    PskcToken {
        serial: serial.into(),
        manufacturer: None,
        key_id: serial.into(),
        kind: TokenKind::Hotp { counter: 0 },
        algorithm: OtpAlgorithm::Sha1,
        digits: 6,
        secret: zeroize::Zeroizing::new(b"12345678901234567890".to_vec()),
    }
}

#[tokio::test]
async fn device_seed_is_sealed_and_accepted_codes_cannot_race() {
    for db in backends().await {
        let s = &db.store;
        let mut tx = s.begin().await.unwrap();
        devices::import(&mut tx, s, &token("600000000"), 1)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut c = s.conn().await.unwrap();
        // The raw column is not the seed.
        let raw: Vec<u8> = sqlx::Row::get(
            &sqlx::query("SELECT secret FROM otp_devices")
                .fetch_one(&mut *c)
                .await
                .unwrap(),
            "secret",
        );
        assert!(!raw.windows(20).any(|w| w == b"12345678901234567890"));
        let d = devices::by_serial(&mut c, "600000000")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&d.secret(s).unwrap()[..], b"12345678901234567890");

        // Two requests that both read counter 0: only the first may move it.
        devices::accepted(&mut c, &d, 1, None, 0).await.unwrap();
        let err = devices::accepted(&mut c, &d, 1, None, 0).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict));

        // A duplicate serial is refused by name.
        drop(c);
        let mut tx = s.begin().await.unwrap();
        let err = devices::import(&mut tx, s, &token("600000000"), 1)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("600000000"), "{err}");
        drop(tx);
        let mut c = s.conn().await.unwrap();

        // Failures block at the limit.
        for _ in 0..4 {
            assert!(!devices::failed(&mut c, "600000000", 5).await.unwrap().1);
        }
        assert_eq!(
            devices::failed(&mut c, "600000000", 5).await.unwrap(),
            (5, true)
        );
        drop(c);
        db.close().await;
    }
}

#[tokio::test]
async fn wrong_seal_key_cannot_open_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("t.db"));
    let s = Store::open(&url, SealKey::from_bytes(&[7u8; 32]).unwrap())
        .await
        .unwrap();
    let mut tx = s.begin().await.unwrap();
    devices::import(&mut tx, &s, &token("1"), 1).await.unwrap();
    tx.commit().await.unwrap();
    s.close().await;
    let other = Store::open(&url, SealKey::from_bytes(&[8u8; 32]).unwrap())
        .await
        .unwrap();
    let mut c = other.conn().await.unwrap();
    let d = devices::by_serial(&mut c, "1").await.unwrap().unwrap();
    assert!(matches!(d.secret(&other), Err(StoreError::Seal)));
}

fn row(hash: &str, grant: &str) -> TokenRow {
    TokenRow {
        hash: hash.into(),
        client_id: "c".into(),
        person_id: "p".into(),
        grant_id: grant.into(),
        grant_data: json!({"grant_id": grant}).to_string(),
        expires_at: 2000,
    }
}

#[tokio::test]
async fn codes_and_refresh_tokens_redeem_once_and_reuse_revokes() {
    for db in backends().await {
        let mut c = db.store.conn().await.unwrap();
        grants::insert_code(&mut c, &row("code1", "g1"))
            .await
            .unwrap();
        assert!(
            matches!(grants::redeem_code(&mut c, "code1", 1000).await.unwrap(), Redeem::Fresh(r) if r.grant_id == "g1")
        );
        assert!(
            matches!(grants::redeem_code(&mut c, "code1", 1001).await.unwrap(), Redeem::Reused(r) if r.grant_id == "g1")
        );
        assert!(matches!(
            grants::redeem_code(&mut c, "nope", 1001).await.unwrap(),
            Redeem::Invalid
        ));
        // Expired codes are invalid.
        grants::insert_code(&mut c, &row("code2", "g2"))
            .await
            .unwrap();
        assert!(matches!(
            grants::redeem_code(&mut c, "code2", 2000).await.unwrap(),
            Redeem::Invalid
        ));

        grants::insert_access(&mut c, &row("at1", "g1"))
            .await
            .unwrap();
        grants::insert_refresh(&mut c, &row("rt1", "g1"))
            .await
            .unwrap();
        assert!(matches!(
            grants::redeem_refresh(&mut c, "rt1", 1000).await.unwrap(),
            Redeem::Fresh(_)
        ));
        grants::insert_refresh(&mut c, &row("rt2", "g1"))
            .await
            .unwrap();
        assert!(matches!(
            grants::redeem_refresh(&mut c, "rt1", 1001).await.unwrap(),
            Redeem::Reused(_)
        ));
        assert_eq!(grants::revoke_grant(&mut c, "g1").await.unwrap(), 3);
        assert!(grants::access(&mut c, "at1", 1000).await.unwrap().is_none());
        assert!(matches!(
            grants::redeem_refresh(&mut c, "rt2", 1002).await.unwrap(),
            Redeem::Invalid
        ));

        // Client-assertion ids are single use.
        assert!(grants::use_jti(&mut c, "c\u{1f}j1", 2000).await.unwrap());
        assert!(!grants::use_jti(&mut c, "c\u{1f}j1", 2000).await.unwrap());
        drop(c);
        db.close().await;
    }
}

/// A decision that issues `access` (and `refresh`) and records `token.refreshed`; the value
/// handed back is the name of the person the store found for the row.
fn issue(access: &str, refresh: Option<&str>) -> grants::Decide<Option<String>> {
    let (access, refresh) = (access.to_string(), refresh.map(str::to_string));
    Box::new(move |r: &TokenRow, p: Option<&Person>| {
        let mine = |hash: &str| TokenRow {
            person_id: r.person_id.clone(),
            ..row(hash, &r.grant_id)
        };
        let tokens = grants::NewTokens {
            access: mine(&access),
            refresh: refresh.as_deref().map(mine),
            event: audit::OwnedEvent {
                event: "token.refreshed",
                subject: Some(r.person_id.clone()),
                client_id: Some(r.client_id.clone()),
                data: json!({}),
            },
        };
        (
            grants::Decision::Issue(Box::new(tokens)),
            p.map(|p| p.name.clone()),
        )
    })
}

fn refuse(spend: bool) -> grants::Decide<Option<String>> {
    Box::new(move |_: &TokenRow, _: Option<&Person>| (grants::Decision::Refuse { spend }, None))
}

/// A person with one refresh token `hash` of grant `grant`.
async fn with_refresh(s: &Store, hash: &str, grant: &str) -> Person {
    let p = person("01019010046");
    let mut c = s.conn().await.unwrap();
    persons::insert(&mut c, &p).await.unwrap();
    grants::insert_refresh(&mut c, &row_of(&p, hash, grant))
        .await
        .unwrap();
    p
}

fn row_of(p: &Person, hash: &str, grant: &str) -> TokenRow {
    TokenRow {
        person_id: p.id.clone(),
        ..row(hash, grant)
    }
}

async fn audit_events(store: &Store) -> Vec<String> {
    let mut c = store.conn().await.unwrap();
    let mut v: Vec<String> = audit::latest(&mut c, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    v.reverse();
    v
}

#[tokio::test]
async fn redeem_grant_rotates_once_and_reuse_revokes_the_family() {
    use grants::{Kind, Redeemed};
    for db in backends().await {
        let s = &db.store;
        with_refresh(s, "rt0", "g1").await;

        let first = s
            .redeem_grant(Kind::Refresh, "rt0".into(), 1000, issue("at1", Some("rt1")))
            .await
            .unwrap();
        assert!(
            matches!(first, Redeemed::Fresh(Some(ref n)) if n == "Kari Nordmann"),
            "{first:?}"
        );
        let second = s
            .redeem_grant(Kind::Refresh, "rt1".into(), 1001, issue("at2", Some("rt2")))
            .await
            .unwrap();
        assert!(matches!(second, Redeemed::Fresh(Some(_))));
        let mut c = s.conn().await.unwrap();
        assert!(grants::access(&mut c, "at1", 1001).await.unwrap().is_some());
        assert!(grants::access(&mut c, "at2", 1001).await.unwrap().is_some());
        drop(c);

        // rt0 again: a copy. Everything of grant g1 is revoked, and the reuse recorded.
        let again = s
            .redeem_grant(Kind::Refresh, "rt0".into(), 1002, issue("at3", Some("rt3")))
            .await
            .unwrap();
        assert!(matches!(again, Redeemed::Reused));
        let mut c = s.conn().await.unwrap();
        assert!(grants::access(&mut c, "at1", 1002).await.unwrap().is_none());
        assert!(grants::access(&mut c, "at2", 1002).await.unwrap().is_none());
        assert!(grants::access(&mut c, "at3", 1002).await.unwrap().is_none());
        let newest = audit::latest(&mut c, 1).await.unwrap().remove(0);
        assert_eq!(newest.event, "token.refresh_reuse");
        // at1, at2 and the live rt2 (rt0 and rt1 are used, but still flagged).
        assert_eq!(newest.data, json!({"revoked": 5}).to_string());
        assert!(audit::verify(&mut c).await.unwrap().ok);
        drop(c);
        let rt2 = s
            .redeem_grant(Kind::Refresh, "rt2".into(), 1003, issue("at4", None))
            .await
            .unwrap();
        assert!(
            matches!(rt2, Redeemed::Invalid),
            "a revoked token is invalid"
        );
        let unknown = s
            .redeem_grant(Kind::Refresh, "nope".into(), 1003, issue("at5", None))
            .await
            .unwrap();
        assert!(matches!(unknown, Redeemed::Invalid));
        assert_eq!(
            audit_events(s).await,
            ["token.refreshed", "token.refreshed", "token.refresh_reuse"]
        );
        db.close().await;
    }
}

#[tokio::test]
async fn redeem_grant_refusals_spend_only_when_asked() {
    use grants::{Kind, Redeemed};
    for db in backends().await {
        let s = &db.store;
        let p = person("01019010046");
        let mut c = s.conn().await.unwrap();
        persons::insert(&mut c, &p).await.unwrap();
        grants::insert_refresh(&mut c, &row_of(&p, "rt", "g1"))
            .await
            .unwrap();
        grants::insert_code(&mut c, &row_of(&p, "code", "g2"))
            .await
            .unwrap();
        grants::insert_code(&mut c, &row_of(&p, "late", "g3"))
            .await
            .unwrap();
        drop(c);

        // A refresh token refused (say, sent by another client) stays valid for its owner.
        let r = s
            .redeem_grant(Kind::Refresh, "rt".into(), 1000, refuse(false))
            .await
            .unwrap();
        assert!(matches!(r, Redeemed::Fresh(None)));
        let r = s
            .redeem_grant(Kind::Refresh, "rt".into(), 1001, issue("at", Some("rt2")))
            .await
            .unwrap();
        assert!(matches!(r, Redeemed::Fresh(Some(_))));

        // A code refused with `spend` (a wrong PKCE verifier) cannot be tried again.
        let r = s
            .redeem_grant(Kind::Code, "code".into(), 1000, refuse(true))
            .await
            .unwrap();
        assert!(matches!(r, Redeemed::Fresh(None)));
        let r = s
            .redeem_grant(Kind::Code, "code".into(), 1001, issue("at-c", None))
            .await
            .unwrap();
        assert!(matches!(r, Redeemed::Reused));
        let mut c = s.conn().await.unwrap();
        assert!(
            grants::access(&mut c, "at-c", 1001)
                .await
                .unwrap()
                .is_none()
        );
        drop(c);

        // An expired code is invalid and is not spent by the attempt.
        let r = s
            .redeem_grant(Kind::Code, "late".into(), 2000, issue("at-l", None))
            .await
            .unwrap();
        assert!(matches!(r, Redeemed::Invalid));
        assert_eq!(
            audit_events(s).await,
            ["token.refreshed", "token.code_reuse"]
        );
        db.close().await;
    }
}

#[tokio::test]
async fn concurrent_redemptions_of_one_token_have_one_winner() {
    use grants::{Kind, Redeemed};
    for db in backends().await {
        with_refresh(&db.store, "rt", "g1").await;
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let s = db.store.clone();
                tokio::spawn(async move {
                    s.redeem_grant(
                        Kind::Refresh,
                        "rt".into(),
                        1000,
                        issue(&format!("at{i}"), Some(&format!("rt{i}"))),
                    )
                    .await
                    .unwrap()
                })
            })
            .collect();
        let mut fresh = 0;
        let mut reused = 0;
        for t in tasks {
            match t.await.unwrap() {
                Redeemed::Fresh(_) => fresh += 1,
                Redeemed::Reused => reused += 1,
                Redeemed::Invalid => panic!("a used token is reported as reused, not invalid"),
            }
        }
        assert_eq!((fresh, reused), (1, 19));
        let mut c = db.store.conn().await.unwrap();
        assert!(audit::verify(&mut c).await.unwrap().ok);
        drop(c);
        db.close().await;
    }
}

#[tokio::test]
async fn many_grants_at_once_are_all_durable_and_chained() {
    use grants::{Kind, Redeemed};
    for db in backends().await {
        let p = person("01019010046");
        let mut c = db.store.conn().await.unwrap();
        persons::insert(&mut c, &p).await.unwrap();
        for i in 0..64 {
            grants::insert_refresh(&mut c, &row_of(&p, &format!("rt{i}"), &format!("g{i}")))
                .await
                .unwrap();
        }
        drop(c);
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let s = db.store.clone();
                tokio::spawn(async move {
                    s.redeem_grant(
                        Kind::Refresh,
                        format!("rt{i}"),
                        1000,
                        issue(&format!("at{i}"), Some(&format!("next{i}"))),
                    )
                    .await
                    .unwrap()
                })
            })
            .collect();
        for t in tasks {
            assert!(matches!(t.await.unwrap(), Redeemed::Fresh(Some(_))));
        }
        // Reopened from disk: every grant's tokens and audit entry are there.
        let again = db.reopen().await;
        let mut c = again.conn().await.unwrap();
        for i in 0..64 {
            assert!(
                grants::access(&mut c, &format!("at{i}"), 1000)
                    .await
                    .unwrap()
                    .is_some()
            );
        }
        assert_eq!(intact_chain(&mut c).await, 64);
        drop(c);
        again.close().await;
        db.close().await;
    }
}

#[tokio::test]
async fn a_grant_whose_write_fails_leaves_nothing_behind() {
    use grants::Kind;
    for db in backends().await {
        let s = &db.store;
        let p = person("01019010046");
        let mut c = s.conn().await.unwrap();
        persons::insert(&mut c, &p).await.unwrap();
        grants::insert_code(&mut c, &row_of(&p, "code", "g1"))
            .await
            .unwrap();
        // An access token with the hash the decision will try to insert again.
        grants::insert_access(&mut c, &row_of(&p, "taken", "g0"))
            .await
            .unwrap();
        drop(c);
        let failed = s
            .redeem_grant(Kind::Code, "code".into(), 1000, issue("taken", None))
            .await;
        assert!(
            failed.is_err(),
            "a duplicate token hash must fail the grant"
        );
        // The code was not spent and no audit entry was written: the grant can be retried.
        assert!(audit_events(s).await.is_empty());
        let retry = s
            .redeem_grant(Kind::Code, "code".into(), 1001, issue("fresh", None))
            .await
            .unwrap();
        assert!(matches!(retry, grants::Redeemed::Fresh(Some(_))));
        db.close().await;
    }
}

#[tokio::test]
async fn a_panicking_decision_rolls_back_and_the_store_keeps_working() {
    use grants::{Kind, Redeemed};
    for db in backends().await {
        let s = &db.store;
        with_refresh(s, "rt", "g1").await;
        let boom: grants::Decide<Option<String>> =
            Box::new(|_: &TokenRow, _: Option<&Person>| panic!("a bug in a decision"));
        let failed = s.redeem_grant(Kind::Refresh, "rt".into(), 1000, boom).await;
        assert!(matches!(failed, Err(StoreError::Internal(_))), "{failed:?}");
        // Nothing was spent or recorded, and the next grant goes through.
        let again = s
            .redeem_grant(Kind::Refresh, "rt".into(), 1001, issue("at", Some("rt2")))
            .await
            .unwrap();
        assert!(matches!(again, Redeemed::Fresh(Some(_))));
        assert_eq!(audit_events(s).await, ["token.refreshed"]);
        db.close().await;
    }
}

#[tokio::test]
async fn one_active_app_per_person_and_a_new_one_replaces_the_old() {
    use segl_store::apps::{self, AppDeviceState, Deactivation, NewAppDevice};
    for db in backends().await {
        let s = &db.store;
        let p = person("01019010046");
        let mut c = s.conn().await.unwrap();
        persons::insert(&mut c, &p).await.unwrap();
        drop(c);
        let dev = |app_id: &'static str, key: &'static str| NewAppDevice {
            app_id,
            person_id: Box::leak(p.id.clone().into_boxed_str()),
            public_key: key,
            label: None,
        };

        let mut tx = s.begin().await.unwrap();
        assert_eq!(
            apps::activate(&mut tx, &dev("A1", "key1"), 100)
                .await
                .unwrap(),
            None
        );
        tx.commit().await.unwrap();
        let mut tx = s.begin().await.unwrap();
        let replaced = apps::activate(&mut tx, &dev("A2", "key2"), 200)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(replaced.as_deref(), Some("A1"));

        let mut c = s.conn().await.unwrap();
        let old = apps::by_app_id(&mut c, "A1").await.unwrap().unwrap();
        assert_eq!(old.state, AppDeviceState::Deactivated);
        assert_eq!(old.deactivated_at, Some(200));
        assert_eq!(old.deactivated_why.as_deref(), Some("replaced"));
        let active = apps::active_for(&mut c, &p.id).await.unwrap().unwrap();
        assert_eq!(active.app_id, "A2");
        let all: Vec<String> = apps::for_person(&mut c, &p.id)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.app_id)
            .collect();
        assert_eq!(all, ["A2", "A1"]);

        // A key or app id already registered is refused and changes nothing.
        drop(c);
        let mut tx = s.begin().await.unwrap();
        let dup = apps::activate(&mut tx, &dev("A3", "key1"), 300).await;
        assert!(matches!(dup, Err(StoreError::Duplicate(_))), "{dup:?}");
        drop(tx);
        let mut c = s.conn().await.unwrap();
        assert_eq!(
            apps::active_for(&mut c, &p.id)
                .await
                .unwrap()
                .unwrap()
                .app_id,
            "A2"
        );

        apps::seen(&mut c, "A2", 350).await.unwrap();
        assert!(
            apps::deactivate(&mut c, "A2", Deactivation::ByPerson, 400)
                .await
                .unwrap()
        );
        assert!(
            !apps::deactivate(&mut c, "A2", Deactivation::ByPerson, 401)
                .await
                .unwrap()
        );
        assert!(
            !apps::deactivate(&mut c, "nope", Deactivation::BySupport, 401)
                .await
                .unwrap()
        );
        let a2 = apps::by_app_id(&mut c, "A2").await.unwrap().unwrap();
        assert_eq!(a2.last_seen_at, Some(350));
        assert_eq!(a2.deactivated_why.as_deref(), Some("by_person"));
        assert!(apps::active_for(&mut c, &p.id).await.unwrap().is_none());
        drop(c);
        db.close().await;
    }
}

#[tokio::test]
async fn racing_activations_leave_exactly_one_active_app() {
    use segl_store::apps::{self, NewAppDevice};
    for db in backends().await {
        let p = person("01019010046");
        let mut c = db.store.conn().await.unwrap();
        persons::insert(&mut c, &p).await.unwrap();
        drop(c);
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let s = db.store.clone();
                let person_id = p.id.clone();
                tokio::spawn(async move {
                    let (app_id, key) = (format!("R{i}"), format!("rkey{i}"));
                    let mut tx = s.begin().await?;
                    let dev = NewAppDevice {
                        app_id: &app_id,
                        person_id: &person_id,
                        public_key: &key,
                        label: None,
                    };
                    apps::activate(&mut tx, &dev, 100 + i).await?;
                    tx.commit().await?;
                    Ok::<_, StoreError>(())
                })
            })
            .collect();
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) | Err(StoreError::Conflict) => {}
                Err(e) => panic!("unexpected: {e:?}"),
            }
        }
        let mut c = db.store.conn().await.unwrap();
        let active: Vec<_> = apps::for_person(&mut c, &p.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|d| d.state == apps::AppDeviceState::Active)
            .collect();
        assert_eq!(active.len(), 1, "{active:?}");
        drop(c);
        db.close().await;
    }
}

fn app_request(
    id: &str,
    person_id: &str,
    app_id: &str,
    expires_at: i64,
) -> segl_store::apps::AppRequest {
    segl_store::apps::AppRequest {
        id: id.into(),
        person_id: person_id.into(),
        app_id: app_id.into(),
        flow_id: "flow-1".into(),
        rp_name: "Demo".into(),
        text: "Log in to Demo".into(),
        verification_code: "elg fjord".into(),
        created_at: 100,
        expires_at,
        state: segl_store::apps::RequestState::Pending,
        decided_at: None,
        user_verification: None,
        signature: None,
    }
}

async fn two_apps(s: &Store) -> Person {
    use segl_store::apps::{self, NewAppDevice};
    let p = person("01019010046");
    let q = person("17054026641");
    let mut c = s.conn().await.unwrap();
    persons::insert(&mut c, &p).await.unwrap();
    persons::insert(&mut c, &q).await.unwrap();
    drop(c);
    for (app_id, key, owner) in [("A1", "k1", &p), ("B1", "k2", &q)] {
        let mut tx = s.begin().await.unwrap();
        let dev = NewAppDevice {
            app_id,
            person_id: &owner.id,
            public_key: key,
            label: None,
        };
        apps::activate(&mut tx, &dev, 50).await.unwrap();
        tx.commit().await.unwrap();
    }
    p
}

#[tokio::test]
async fn app_requests_are_answered_once_by_their_active_device() {
    use segl_store::apps::{self, Answer, Deactivation, Decided, RequestState};
    let yes = Answer {
        approve: true,
        user_verification: Some("pin"),
        signature: "sig",
    };
    for db in backends().await {
        let s = &db.store;
        let p = two_apps(s).await;
        let mut c = s.conn().await.unwrap();
        apps::insert_request(&mut c, &app_request("r1", &p.id, "A1", 220))
            .await
            .unwrap();
        apps::insert_request(&mut c, &app_request("r2", &p.id, "A1", 150))
            .await
            .unwrap();
        let pending: Vec<String> = apps::pending_for(&mut c, "A1", 160)
            .await
            .unwrap()
            .into_iter()
            .map(|q| q.id)
            .collect();
        assert_eq!(pending, ["r1"], "a lapsed request is not offered");
        // The same in the event stream's one query; none for another app's list.
        let ids = |l: Option<Vec<apps::AppRequest>>| -> Option<Vec<String>> {
            l.map(|l| l.into_iter().map(|q| q.id).collect())
        };
        assert_eq!(
            ids(apps::pending_if_active(&mut c, "A1", 160).await.unwrap()),
            Some(vec!["r1".to_string()])
        );
        assert_eq!(
            ids(apps::pending_if_active(&mut c, "A1", 100).await.unwrap()),
            Some(vec!["r1".to_string(), "r2".to_string()]),
            "oldest first"
        );
        assert_eq!(
            ids(apps::pending_if_active(&mut c, "B1", 160).await.unwrap()),
            Some(vec![])
        );
        assert_eq!(
            ids(apps::pending_if_active(&mut c, "nope", 160).await.unwrap()),
            None
        );

        assert_eq!(
            apps::decide(&mut c, "r1", "B1", &yes, 160).await.unwrap(),
            Decided::WrongDevice
        );
        assert_eq!(
            apps::decide(&mut c, "r1", "A1", &yes, 160).await.unwrap(),
            Decided::Recorded(RequestState::Approved)
        );
        let no = Answer {
            approve: false,
            user_verification: None,
            signature: "sig2",
        };
        assert_eq!(
            apps::decide(&mut c, "r1", "A1", &no, 161).await.unwrap(),
            Decided::AlreadyDecided(RequestState::Approved),
            "a replayed or second answer changes nothing"
        );
        let r1 = apps::request(&mut c, "r1").await.unwrap().unwrap();
        assert_eq!(r1.user_verification.as_deref(), Some("pin"));
        assert_eq!(r1.signature.as_deref(), Some("sig"));
        assert_eq!(
            apps::decide(&mut c, "r2", "A1", &yes, 160).await.unwrap(),
            Decided::Expired
        );
        assert_eq!(
            apps::decide(&mut c, "nope", "A1", &yes, 160).await.unwrap(),
            Decided::Unknown
        );

        // Cancelled with its flow; then a deactivated device is refused.
        apps::insert_request(&mut c, &app_request("r3", &p.id, "A1", 400))
            .await
            .unwrap();
        // r3, and r2, which lapsed unanswered.
        assert_eq!(
            apps::cancel_for_flow(&mut c, "flow-1", 170)
                .await
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            apps::decide(&mut c, "r3", "A1", &yes, 171).await.unwrap(),
            Decided::AlreadyDecided(RequestState::Cancelled)
        );
        apps::insert_request(&mut c, &app_request("r4", &p.id, "A1", 400))
            .await
            .unwrap();
        assert!(
            apps::deactivate(&mut c, "A1", Deactivation::ByPerson, 180)
                .await
                .unwrap()
        );
        assert_eq!(
            apps::decide(&mut c, "r4", "A1", &yes, 181).await.unwrap(),
            Decided::DeviceInactive
        );
        assert_eq!(
            apps::request(&mut c, "r4").await.unwrap().unwrap().state,
            RequestState::Pending
        );
        // A deactivated device's waiting request is not offered to it.
        assert!(
            apps::pending_if_active(&mut c, "A1", 181)
                .await
                .unwrap()
                .is_none()
        );
        drop(c);
        db.close().await;
    }
}

#[tokio::test]
async fn racing_answers_to_one_request_have_one_winner() {
    use segl_store::apps::{self, Answer, Decided};
    for db in backends().await {
        let p = two_apps(&db.store).await;
        let mut c = db.store.conn().await.unwrap();
        apps::insert_request(&mut c, &app_request("r1", &p.id, "A1", 1000))
            .await
            .unwrap();
        drop(c);
        let tasks: Vec<_> = (0..10)
            .map(|i| {
                let s = db.store.clone();
                tokio::spawn(async move {
                    let mut c = s.conn().await.unwrap();
                    let a = Answer {
                        approve: i % 2 == 0,
                        user_verification: None,
                        signature: "sig",
                    };
                    apps::decide(&mut c, "r1", "A1", &a, 200).await.unwrap()
                })
            })
            .collect();
        let mut recorded = 0;
        for t in tasks {
            match t.await.unwrap() {
                Decided::Recorded(_) => recorded += 1,
                Decided::AlreadyDecided(_) => {}
                other => panic!("unexpected: {other:?}"),
            }
        }
        assert_eq!(recorded, 1);
        db.close().await;
    }
}

#[tokio::test]
async fn activations_wait_out_the_security_period_and_are_used_once() {
    use segl_core::app::ActivationPolicy;
    use segl_store::apps::{self, ActivationMethod, CodeCheck, NewActivation};
    let policy = ActivationPolicy {
        security_period_secs: 3600,
        completion_window_secs: 7200,
    };
    for db in backends().await {
        let s = &db.store;
        let p = person("01019010046");
        let mut c = s.conn().await.unwrap();
        persons::insert(&mut c, &p).await.unwrap();
        let new = |id: &'static str, method, code: &'static str, second: Option<&'static str>| {
            NewActivation {
                id,
                person_id: Box::leak(p.id.clone().into_boxed_str()),
                method,
                code_hash: code,
                second_code_hash: second,
            }
        };
        let check = |code: &'static str, second: Option<&'static str>, now: i64| {
            let s = s.clone();
            async move {
                let mut c = s.conn().await.unwrap();
                apps::check_code(&mut c, code, second, &policy, 3, now)
                    .await
                    .unwrap()
            }
        };

        // With the eID: an hour's wait, then two hours to finish.
        assert_eq!(
            apps::start_activation(&mut c, &new("a1", ActivationMethod::Eid, "c1", None), 1000)
                .await
                .unwrap(),
            0
        );
        drop(c);
        assert_eq!(
            check("c1", None, 1000).await,
            CodeCheck::NotYet { opens_at: 4600 }
        );
        assert_eq!(
            check("c1", None, 4599).await,
            CodeCheck::NotYet { opens_at: 4600 }
        );
        assert_eq!(check("c1", None, 4600).await, CodeCheck::Ready("a1".into()));
        assert_eq!(
            check("c1", None, 11_800).await,
            CodeCheck::Ended,
            "window closed"
        );
        assert_eq!(check("nope", None, 4600).await, CodeCheck::Unknown);
        let mut c = s.conn().await.unwrap();
        assert_eq!(
            apps::pending_activation(&mut c, &p.id)
                .await
                .unwrap()
                .unwrap()
                .id,
            "a1"
        );
        assert!(
            apps::complete_activation(&mut c, "a1", "APP1", 4700)
                .await
                .unwrap()
        );
        assert!(
            !apps::complete_activation(&mut c, "a1", "APP2", 4701)
                .await
                .unwrap()
        );
        assert!(
            apps::pending_activation(&mut c, &p.id)
                .await
                .unwrap()
                .is_none()
        );
        drop(c);
        assert_eq!(check("c1", None, 4800).await, CodeCheck::Ended, "used once");

        // From the old phone: open at once. A newer activation cancels it.
        let mut c = s.conn().await.unwrap();
        apps::start_activation(
            &mut c,
            &new("a2", ActivationMethod::OldDevice, "c2", None),
            5000,
        )
        .await
        .unwrap();
        drop(c);
        assert_eq!(check("c2", None, 5000).await, CodeCheck::Ready("a2".into()));
        let mut c = s.conn().await.unwrap();
        let cancelled = apps::start_activation(
            &mut c,
            &new("a3", ActivationMethod::SmsAndEmail, "c3", Some("second")),
            5001,
        )
        .await
        .unwrap();
        assert_eq!(cancelled, 1);
        drop(c);
        assert_eq!(check("c2", None, 5002).await, CodeCheck::Ended);

        // SMS and email: both codes; three wrong second codes end it.
        let open = 5001 + 3600;
        assert_eq!(
            check("c3", Some("second"), open).await,
            CodeCheck::Ready("a3".into())
        );
        assert_eq!(
            check("c3", Some("wrong"), open).await,
            CodeCheck::WrongSecondCode { remaining: 2 }
        );
        assert_eq!(
            check("c3", None, open).await,
            CodeCheck::WrongSecondCode { remaining: 1 }
        );
        assert_eq!(check("c3", Some("wrong"), open).await, CodeCheck::Ended);
        assert_eq!(check("c3", Some("second"), open).await, CodeCheck::Ended);
        let mut c = s.conn().await.unwrap();
        assert!(
            apps::pending_activation(&mut c, &p.id)
                .await
                .unwrap()
                .is_none()
        );
        drop(c);
        db.close().await;
    }
}

fn flow_row(id: &str) -> flows::FlowRow {
    flows::FlowRow {
        id: id.into(),
        kind: "login".into(),
        binding_hash: "b".into(),
        csrf: "c".into(),
        data: "{}".into(),
        version: 1,
        expires_at: 9_999_999_999,
    }
}

/// Inserts flow `f{i}`; a durable body (`i % 4 != 0`) also appends an audit event; odd
/// ones then refuse.
fn numbered_body(
    i: usize,
) -> impl for<'a> FnOnce(Txn<'a>) -> Body<'a, Result<usize, StoreError>> + Send + 'static {
    move |mut tx| {
        Box::pin(async move {
            flows::insert(&mut tx, &flow_row(&format!("f{i}"))).await?;
            if !i.is_multiple_of(4) {
                audit::append(
                    &mut tx,
                    &Event {
                        event: "test.body",
                        subject: None,
                        client_id: None,
                        data: json!({ "i": i }),
                    },
                    1000,
                )
                .await?;
            }
            if i % 2 == 1 {
                return Err(StoreError::Conflict);
            }
            Ok(i)
        })
    }
}

#[tokio::test]
async fn transactions_side_by_side_keep_their_own_outcome() {
    for db in backends().await {
        // 40 bodies at once, durable and relaxed mixed. On SQLite they share group commits,
        // so a refusal must undo only its own writes.
        let tasks: Vec<_> = (0..40)
            .map(|i: usize| {
                let s = db.store.clone();
                tokio::spawn(async move {
                    if i.is_multiple_of(4) {
                        s.relaxed(numbered_body(i)).await
                    } else {
                        s.transact(numbered_body(i)).await
                    }
                })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            match t.await.unwrap() {
                Ok(v) => assert_eq!((v, i % 2), (i, 0)),
                Err(e) => assert!(i % 2 == 1 && matches!(e, StoreError::Conflict), "{i}: {e}"),
            }
        }
        // Reopened from disk: exactly the kept bodies' writes, in one unbroken chain.
        let again = db.reopen().await;
        let mut c = again.conn().await.unwrap();
        for i in 0..40 {
            let found = flows::get(&mut c, &format!("f{i}")).await.unwrap();
            assert_eq!(found.is_some(), i % 2 == 0, "flow f{i}");
        }
        // Kept and durable: i = 2, 6, 10, … 38.
        assert_eq!(intact_chain(&mut c).await, 10);
        drop(c);
        again.close().await;
        db.close().await;
    }
}

fn test_event(name: &'static str) -> Event<'static> {
    Event {
        event: name,
        subject: None,
        client_id: None,
        data: json!({}),
    }
}

/// Inserts the flows `ids` at version 1.
async fn insert_flows(s: &Store, ids: &[&str]) {
    let mut c = s.conn().await.unwrap();
    for id in ids {
        flows::insert(&mut c, &flow_row(id)).await.unwrap();
    }
}

/// Flow `f` as one save of `{"n":1}` over version 1 leaves it.
async fn assert_saved_once(s: &Store) {
    let mut c = s.conn().await.unwrap();
    let row = flows::get(&mut c, "f").await.unwrap().unwrap();
    assert_eq!((row.version, row.data.as_str()), (2, "{\"n\":1}"));
}

/// Appends an audit entry, then saves flow `f` at a version it never had (Conflict).
fn stale_save(mut tx: Txn<'_>) -> Body<'_, Result<(), StoreError>> {
    Box::pin(async move {
        audit::append(&mut tx, &test_event("test.stale"), 1000).await?;
        let mut row = flow_row("f");
        row.version = 7;
        flows::update(&mut tx, &mut row).await
    })
}

#[tokio::test]
async fn a_conflict_inside_a_transaction_undoes_its_earlier_writes() {
    for db in backends().await {
        let s = &db.store;
        insert_flows(s, &["f"]).await;
        // The audit append succeeds, then the version-guarded update loses: both undone.
        let stale = s.transact(stale_save).await;
        assert!(matches!(stale, Err(StoreError::Conflict)), "{stale:?}");
        assert!(audit_events(s).await.is_empty());
        // The current version wins, once.
        let saved = s
            .transact(|mut tx| {
                Box::pin(async move {
                    let mut row = flows::get(&mut tx, "f").await?.expect("the flow");
                    row.data = "{\"n\":1}".into();
                    flows::update(&mut tx, &mut row).await?;
                    Ok::<_, StoreError>(row.version)
                })
            })
            .await
            .unwrap();
        assert_eq!(saved, 2);
        assert_saved_once(s).await;
        db.close().await;
    }
}

/// A batched body that needs a transaction after all; on PostgreSQL it gets
/// `NeedsTransaction` and writes nothing, on SQLite it is a transaction and is written.
type Batch = fn(Txn<'_>) -> Body<'_, Result<(), StoreError>>;

#[tokio::test]
async fn a_batched_body_writes_everything_or_nothing() {
    for db in backends().await {
        let s = &db.store;
        let pg = s.backend() == Backend::Postgres;
        insert_flows(s, &["f", "g"]).await;
        // A stale version: the audit entry held back before it is not written either.
        let stale = s.batched(stale_save).await;
        assert!(matches!(stale, Err(StoreError::Conflict)), "{stale:?}");
        assert!(audit_events(s).await.is_empty());
        // The current version: read at once, written with its audit entry and a new flow.
        let saved = s
            .batched(|mut tx| {
                Box::pin(async move {
                    let mut row = flows::get(&mut tx, "f").await?.expect("the flow");
                    row.data = "{\"n\":1}".into();
                    audit::append(&mut tx, &test_event("test.saved"), 1000).await?;
                    flows::update(&mut tx, &mut row).await?;
                    grants::insert_access(&mut tx, &row_of(&person("01019010046"), "at", "g1"))
                        .await?;
                    Ok::<_, StoreError>(row.version)
                })
            })
            .await
            .unwrap();
        assert_eq!(saved, 2);
        assert_saved_once(s).await;
        let mut c = s.conn().await.unwrap();
        assert!(grants::access(&mut c, "at", 1000).await.unwrap().is_some());
        assert_eq!(intact_chain(&mut c).await, 1);
        drop(c);
        // What only a transaction can do: read after a write, two audit entries (one head
        // row), one table updated twice, a write whose count is wanted.
        let needs_tx: [(&str, Batch); 4] = [
            ("read after write", |mut tx| {
                Box::pin(async move {
                    audit::append(&mut tx, &test_event("test.read_after"), 1000).await?;
                    flows::get(&mut tx, "g").await.map(drop)
                })
            }),
            ("two audit entries", |mut tx| {
                Box::pin(async move {
                    audit::append(&mut tx, &test_event("test.first"), 1000).await?;
                    audit::append(&mut tx, &test_event("test.second"), 1000).await?;
                    Ok(())
                })
            }),
            ("one table updated twice", |mut tx| {
                Box::pin(async move {
                    let mut f = flows::get(&mut tx, "f").await?.expect("f");
                    let mut g = flows::get(&mut tx, "g").await?.expect("g");
                    flows::update(&mut tx, &mut f).await?;
                    flows::update(&mut tx, &mut g).await
                })
            }),
            ("a count wanted", |mut tx| {
                Box::pin(async move {
                    audit::append(&mut tx, &test_event("test.counted"), 1000).await?;
                    grants::revoke_person(&mut tx, "nobody").await.map(drop)
                })
            }),
        ];
        for (what, body) in needs_tx {
            let out = s.batched(body).await;
            if pg {
                assert!(
                    matches!(out, Err(StoreError::NeedsTransaction)),
                    "{what}: {out:?}"
                );
            } else {
                assert!(out.is_ok(), "{what}: {out:?}");
            }
        }
        let mut c = s.conn().await.unwrap();
        assert_eq!(intact_chain(&mut c).await, if pg { 1 } else { 5 });
        let f = flows::get(&mut c, "f").await.unwrap().unwrap();
        let g = flows::get(&mut c, "g").await.unwrap().unwrap();
        assert_eq!((f.version, g.version), if pg { (2, 1) } else { (3, 2) });
        drop(c);
        db.close().await;
    }
}

#[tokio::test]
async fn a_body_that_waits_for_other_io_is_refused_on_the_sqlite_writer() {
    for db in backends().await {
        let s = &db.store;
        let out = s
            .transact(|mut tx| {
                Box::pin(async move {
                    flows::insert(&mut tx, &flow_row("w")).await?;
                    // Anything but the transaction's own statements: on the writer thread
                    // nothing may wait, or every job behind it would.
                    tokio::task::yield_now().await;
                    Ok::<_, StoreError>(())
                })
            })
            .await;
        let mut c = s.conn().await.unwrap();
        let kept = flows::get(&mut c, "w").await.unwrap().is_some();
        drop(c);
        match s.backend() {
            Backend::Sqlite => {
                assert!(matches!(out, Err(StoreError::Internal(_))), "{out:?}");
                assert!(!kept, "a refused body writes nothing");
            }
            Backend::Postgres => {
                out.unwrap();
                assert!(kept);
            }
        }
        // The writer goes on.
        s.transact(|mut tx| Box::pin(async move { flows::insert(&mut tx, &flow_row("x")).await }))
            .await
            .unwrap();
        db.close().await;
    }
}

fn order(number: &str, state: &str) -> segl_store::orders::Order {
    segl_store::orders::Order {
        id: uuid::Uuid::now_v7().to_string(),
        number: number.into(),
        nin: "15058500027".into(),
        name: "Kari Nordmann".into(),
        phone: Some("+4741234567".into()),
        email: None,
        address: vec!["Storgata 1".into(), "0155 Oslo".into()],
        kind: "card".into(),
        delivery: "letter".into(),
        guardian_nin: None,
        state: state.into(),
        reason: None,
        evidence: "manual".into(),
        evidence_summary: None,
        identity_verified: false,
        decided_by: None,
        guardian_person_id: None,
        guardian_decided_at: None,
        person_id: None,
        code_expires_at: None,
        code_failures: 0,
        device_serial: None,
        created_at: 100,
        updated_at: 100,
        activated_at: None,
    }
}

#[tokio::test]
async fn orders_move_once_and_expire_with_their_codes() {
    use segl_store::orders::{self, CodeHashes, Transition};
    for db in backends().await {
        let mut tx = db.store.begin().await.unwrap();
        let p = person("15058500027");
        persons::insert(&mut tx, &p).await.unwrap();
        let o = order("123456789015", "pending_review");
        orders::insert(&mut tx, &o).await.unwrap();
        // The same number twice: refused.
        let err = orders::insert(&mut tx, &order("123456789015", "pending_review"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Duplicate(_)), "{err:?}");
        assert!(
            orders::open_for_nin(&mut tx, &o.nin, 200)
                .await
                .unwrap()
                .is_some()
        );
        let approve = Transition {
            from: "pending_review",
            to: "approved",
            reason: None,
            decided_by: Some("agent"),
        };
        assert!(
            orders::transition(&mut tx, &o.id, &approve, 200)
                .await
                .unwrap()
        );
        // Two agents deciding at once: the second finds it moved.
        assert!(
            !orders::transition(&mut tx, &o.id, &approve, 201)
                .await
                .unwrap()
        );
        let codes = CodeHashes {
            code: "h1".into(),
            second: None,
        };
        orders::set_codes(&mut tx, &o.id, &p.id, &codes, 1000, Some("600000001"), 200)
            .await
            .unwrap();
        assert_eq!(
            orders::codes(&mut tx, &o.id).await.unwrap().unwrap().code,
            "h1"
        );
        assert_eq!(orders::code_failed(&mut tx, &o.id).await.unwrap(), 1);
        // Open while its codes work; not open once they ran out, and then expired.
        assert!(
            orders::open_for_nin(&mut tx, &o.nin, 999)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            orders::open_for_nin(&mut tx, &o.nin, 1000)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(orders::expire(&mut tx, 999).await.unwrap(), 0);
        assert_eq!(orders::expire(&mut tx, 1000).await.unwrap(), 1);
        let got = orders::by_number(&mut tx, "123456789015")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.state, "expired");
        assert!(
            orders::codes(&mut tx, &o.id).await.unwrap().is_none(),
            "codes forgotten"
        );
        assert!(!orders::activated(&mut tx, &o.id, 1001).await.unwrap());
        assert_eq!(orders::last_activation(&mut tx, &p.id).await.unwrap(), None);
        tx.commit().await.unwrap();
        db.close().await;
    }
}

#[tokio::test]
async fn a_node_keeps_the_newest_flow_it_saved_until_told_to_forget() {
    for db in backends().await {
        let s = &db.store;
        assert!(s.cached_flow("f", 0).is_none(), "nothing kept yet");
        let mut v2 = flow_row("f");
        v2.version = 2;
        s.remember_flow(&v2);
        assert_eq!(s.cached_flow("f", 0).map(|r| r.version), Some(2));
        // A slower request finishing late with an older version does not replace it.
        s.remember_flow(&flow_row("f"));
        assert_eq!(s.cached_flow("f", 0).map(|r| r.version), Some(2));
        let mut v3 = flow_row("f");
        v3.version = 3;
        v3.data = "{\"n\":3}".into();
        s.remember_flow(&v3);
        let kept = s.cached_flow("f", 0).expect("the newest copy");
        assert_eq!((kept.version, kept.data.as_str()), (3, "{\"n\":3}"));
        // An expired flow is not handed out.
        assert!(s.cached_flow("f", v3.expires_at).is_none(), "expired");
        assert!(s.cached_flow("f", v3.expires_at - 1).is_some());
        s.forget_flow("f");
        assert!(s.cached_flow("f", 0).is_none(), "forgotten");
        // The copy is this node's only: the database never saw these rows.
        let mut c = s.conn().await.unwrap();
        assert!(flows::get(&mut c, "f").await.unwrap().is_none());
    }
}
