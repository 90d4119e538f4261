//! The browser tests' side of node: Debian's Chromium and the npm packages of
//! `tests/browser` (playwright-core, axe-core), and a node script run with its stdout read
//! line by line, for scripts that talk to the test while they run.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};

use super::skip;

/// Debian's Chromium, which the scripts drive (`.ci/run` installs it).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The repository root, if Chromium and the npm packages are there (otherwise `what` is
/// skipped with the reason, or fails in CI).
pub fn browser_prerequisites(what: &str) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if !Path::new(CHROMIUM).exists() {
        skip(
            what,
            "/usr/bin/chromium is missing (apt-get install chromium chromium-driver)",
        );
        return None;
    }
    if !root
        .join("tests/browser/node_modules/playwright-core")
        .exists()
    {
        skip(
            what,
            "tests/browser/node_modules is missing (run: npm ci --prefix tests/browser)",
        );
        return None;
    }
    Some(root)
}

/// A temporary folder for failure screenshots (kept when the test fails).
pub fn screenshot_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("segl-browser-")
        .tempdir()
        .expect("temp dir")
}

/// `node SCRIPT`, killed on drop, with its stdout as lines on a channel and its stderr
/// collected; with [`NodeScript::spawn_talking`] also a pipe to its stdin.
pub struct NodeScript {
    /// The node process.
    pub child: Child,
    /// Its stdout, a line at a time.
    pub lines: mpsc::Receiver<String>,
    /// Its stderr so far.
    pub stderr: Arc<Mutex<String>>,
    /// Its stdin, for scripts that wait for the test's answers.
    stdin: Option<ChildStdin>,
}

impl NodeScript {
    /// Runs `script` (relative to `root`) with stdin closed.
    pub fn spawn(root: &Path, script: &str, env: &[(&str, &std::ffi::OsStr)]) -> NodeScript {
        NodeScript::start(root, script, env, false)
    }

    /// Runs `script` with a pipe to its stdin, for [`NodeScript::send_line`].
    pub fn spawn_talking(
        root: &Path,
        script: &str,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> NodeScript {
        NodeScript::start(root, script, env, true)
    }

    fn start(
        root: &Path,
        script: &str,
        env: &[(&str, &std::ffi::OsStr)],
        talking: bool,
    ) -> NodeScript {
        let mut child = Command::new("node")
            .arg(root.join(script))
            .envs(env.iter().copied())
            .current_dir(root)
            .stdin(if talking {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run node");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("stderr");
        let buf = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = err.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        let stdin = child.stdin.take();
        NodeScript {
            child,
            lines,
            stderr,
            stdin,
        }
    }

    /// Writes one line to the script's stdin; an error if the script has gone or was
    /// started without the pipe.
    pub fn send_line(&mut self, line: &str) -> Result<(), String> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or("the script was started without a pipe to its stdin")?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("cannot write to the script: {e}"))
    }
}

impl Drop for NodeScript {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
