//! A person logs in on the demo in a real browser: `tests/browser/demo_login.mjs` drives
//! Debian's Chromium with playwright-core against `segl serve --demo`. `.ci/run` installs
//! Chromium and `tests/browser/node_modules`; outside CI a missing one is skipped with the
//! reason, in CI it fails.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const CHROMIUM: &str = "/usr/bin/chromium";

#[test]
fn demo_login_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if !Path::new(CHROMIUM).exists() {
        skip(
            "the browser test",
            "/usr/bin/chromium is missing (apt-get install chromium chromium-driver)",
        );
        return;
    }
    if !root
        .join("tests/browser/node_modules/playwright-core")
        .exists()
    {
        skip(
            "the browser test",
            "tests/browser/node_modules is missing (run: npm ci --prefix tests/browser)",
        );
        return;
    }
    let segl = Segl::new(Backend::Sqlite);
    let server = Server::start(&segl, &["--demo"]);
    let shots = tempfile::Builder::new()
        .prefix("segl-browser-")
        .tempdir()
        .expect("temp dir");
    let out = Command::new("node")
        .arg(root.join("tests/browser/demo_login.mjs"))
        .env("SEGL_BASE_URL", &server.base_url)
        .env("SCREENSHOT_DIR", shots.path())
        .env("CHROMIUM", CHROMIUM)
        .current_dir(&root)
        .output()
        .expect("cannot run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !(out.status.success() && stdout.lines().any(|l| l.starts_with("browser: OK"))) {
        // Keep the screenshot for whoever reads the failure.
        let kept = shots.keep();
        panic!(
            "the demo login in Chromium failed ({}); screenshots in {}\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver stderr:\n{}",
            out.status,
            kept.display(),
            server.stderr()
        );
    }
    print!("{stdout}");
    segl.audit_ok();
}
