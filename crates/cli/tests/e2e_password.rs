//! Password rules end to end: the policy at enrolment, and re-hashing at login when the
//! configured Argon2id parameters change.

#[macro_use]
mod common;

use common::*;

backend_tests!(
    weak_passwords_are_refused_at_enrolment,
    login_rehashes_with_new_parameters,
);

async fn weak_passwords_are_refused_at_enrolment(backend: Backend) {
    let segl = Segl::new(backend);
    // The data directory of a fresh machine does not exist yet; a refusal must not make it
    // (no keys, no database, no CA).
    let dir = segl.data_dir().join("fresh");
    let out = run_stdin(
        segl.command_in(
            &dir,
            &[
                "person",
                "add",
                "--nin",
                NIN,
                "--name",
                NAME,
                "--password-stdin",
            ],
        ),
        Some("short1\n"),
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("password refused"),
        "{out:?}"
    );
    assert!(
        !dir.exists(),
        "a refused enrolment created {}",
        dir.display()
    );
    for (pw, why) in [
        ("short1", "at least 10 characters"),
        ("password123", "common"),
        ("Kari-15058500027", "national identity number"),
    ] {
        let out = segl.cmd_stdin(
            &[
                "person",
                "add",
                "--nin",
                NIN,
                "--name",
                NAME,
                "--password-stdin",
            ],
            Some(&format!("{pw}\n")),
        );
        assert_eq!(out.status.code(), Some(2), "{pw}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(err.contains("password refused"), "{pw}: {err}");
        assert!(err.contains(why), "{pw} should be refused as {why}: {err}");
    }
    // Nothing was added.
    let out = segl.cmd(&["person", "show", "--nin", NIN, "--json"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

async fn login_rehashes_with_new_parameters(backend: Backend) {
    let segl = Segl::new(backend);
    segl.add_person(NIN, NAME, PASSWORD);
    let p = segl.person(NIN);
    assert_eq!(p["password_hash_params"], "argon2id m=19456,t=2,p=1", "{p}");
    // The operator raises the cost; the next login re-hashes.
    segl.write_config("[argon2]\nm_kib = 12288\nt = 3\np = 1\n");
    segl.import_tokens("hotp-plain.pskcxml");
    segl.assign(SERIAL, NIN);
    let rp = segl.add_rp("Test", REDIRECT_URI, &[]);
    let server = Server::start(&segl, &[]);
    let (_, client) = discover(&server, &rp).await;
    let start = authorize(&client, &["profile"], &[]);
    let mut b = Browser::new(&server);
    let flow = b.start_flow(start.url.as_str()).await;
    let flow = b.identify(&flow, NIN).await;
    let code = Hotp::new(SERIAL).next_code();
    let flow = b.otp_ok(&flow, &code).await;
    let done = b.password_ok(&flow, PASSWORD).await;
    assert_eq!(done["state"], "done", "{done}");
    let p = segl.person(NIN);
    assert_eq!(p["password_hash_params"], "argon2id m=12288,t=3,p=1", "{p}");
}
