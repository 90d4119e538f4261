//! A crash of `segl serve` (SIGKILL) in the middle of a login loses nothing it answered:
//! the flow's first steps, which on SQLite commit without waiting for the disk
//! (`Store::relaxed`), are still there when a new process opens the same data, and the
//! login goes on from where it was.

#[macro_use]
mod common;

use common::*;

backend_tests!(a_login_goes_on_after_segl_is_killed,);

async fn a_login_goes_on_after_segl_is_killed(backend: Backend) {
    let Fixture {
        segl,
        server,
        mut device,
        rp,
        ..
    } = Fixture::new(backend, &[]);
    let (_, client) = discover(&server, &rp).await;
    let start = authorize(&client, &[], &[]);
    let mut b = Browser::new(&server);
    let flow = b.start_flow(start.url.as_str()).await;
    let flow = b.identify(&flow, NIN).await;
    let id = flow_id(&flow);

    // SIGKILL: no shutdown, no flush.
    drop(server);
    let server = Server::start(&segl, &[]);
    b.moved_to(&server);

    let view = b.flow(&id).await;
    assert_eq!(view["state"], "otp", "the flow's progress survived: {view}");
    let view = b.otp_ok(&view, &device.next_code()).await;
    let done = b.password_ok(&view, PASSWORD).await;
    let redirect_to = done["redirect_to"]
        .as_str()
        .unwrap_or_else(|| panic!("a finished login names its redirect: {done}"));
    assert!(redirect_to.contains("code="), "{redirect_to}");
    assert_eq!(segl.audit_count("login.success"), 1);
    segl.audit_ok();
}
