//! `segl token import` of a large file shows a progress bar on a terminal and nothing but
//! its result in a pipe. The terminal is a real pseudo-terminal from util-linux `script`.

#[macro_use]
mod common;

use std::process::Command;

use common::*;

const TOKENS: usize = 3000;

/// A plain RFC 6030 file with `n` HOTP devices (serials 700000000…), written here so the
/// size is the test's choice.
fn pskc_with(n: usize) -> String {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <pskc:KeyContainer xmlns:pskc=\"urn:ietf:params:xml:ns:keyprov:pskc\" Version=\"1.0\">\n",
    );
    for i in 0..n {
        // 20 secret bytes, different for each device, base64 of "seed-0000000000000123".
        let secret = data_encoding::BASE64.encode(format!("seed-{i:016}").as_bytes());
        xml.push_str(&format!(
            " <pskc:KeyPackage>\n  <pskc:DeviceInfo><pskc:Manufacturer>Bulk AS</pskc:Manufacturer>\
             <pskc:SerialNo>{}</pskc:SerialNo></pskc:DeviceInfo>\n  \
             <pskc:Key Algorithm=\"urn:ietf:params:xml:ns:keyprov:pskc:hotp\" Id=\"k{i}\">\
             <pskc:AlgorithmParameters><pskc:ResponseFormat Length=\"6\"/></pskc:AlgorithmParameters>\
             <pskc:Data><pskc:Secret><pskc:PlainValue>{secret}</pskc:PlainValue></pskc:Secret>\
             <pskc:Counter><pskc:PlainValue>0</pskc:PlainValue></pskc:Counter></pskc:Data></pskc:Key>\n \
             </pskc:KeyPackage>\n",
            700_000_000 + i
        ));
    }
    xml.push_str("</pskc:KeyContainer>\n");
    xml
}

fn quoted(s: &std::ffi::OsStr) -> String {
    format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"))
}

#[test]
fn bulk_import_shows_progress_on_a_terminal_and_not_in_a_pipe() {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), pskc_with(TOKENS)).expect("write PSKC");

    // On a terminal.
    let tty = Segl::new(Backend::Sqlite);
    let mut words = vec![
        quoted(env!("CARGO_BIN_EXE_segl").as_ref()),
        "token".into(),
        "import".into(),
        quoted(file.path().as_os_str()),
    ];
    words.extend(tty.location_args().iter().map(|a| quoted(a)));
    let out = Command::new("script")
        .args(["-q", "-e", "-f", "-c", &words.join(" "), "/dev/null"])
        .env_remove("SEGL_DATA_DIR")
        .env_remove("SEGL_DATABASE_URL")
        .env_remove("SEGL_CONFIG")
        .output()
        .expect("util-linux `script` runs (Debian's bsdutils)");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "import on a terminal failed:\n{screen}"
    );
    assert!(
        screen.contains("importing [") && screen.contains(&format!("/{TOKENS}")),
        "no progress bar on the terminal:\n{screen}"
    );
    assert!(
        screen.contains(&format!("imported {TOKENS} code devices")),
        "{screen}"
    );

    // In a pipe: the result only, no bar, nothing on stderr.
    let piped = Segl::new(Backend::Sqlite);
    let out = piped.ok(&["token", "import", file.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.trim(), format!("imported {TOKENS} code devices"));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("importing"),
        "a bar was drawn into a pipe"
    );
    let listed = piped.json(&["token", "list", "--json"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(TOKENS), "{listed}");
}
