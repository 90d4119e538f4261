//! Seeds a segl data directory through segl's own CLI, as an operator would: a plain PSKC
//! file (RFC 6030) with K HOTP devices whose secrets the benchmark knows, K persons with a
//! password each, one device per person, and one confidential client.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(clap::Args)]
pub struct SetupArgs {
    /// The segl binary.
    #[arg(long)]
    segl: PathBuf,
    /// segl's data directory.
    #[arg(long)]
    data_dir: PathBuf,
    /// segl's database URL (default: SQLite in the data directory).
    #[arg(long)]
    database_url: Option<String>,
    /// How many persons (and code devices) to create.
    #[arg(long, default_value_t = 32)]
    people: usize,
    /// Where to write the persons (NIN, password, serial, secret, counter).
    #[arg(long)]
    out: PathBuf,
    /// Redirect URI of the benchmark client.
    #[arg(long, default_value = "http://127.0.0.1:9/cb")]
    redirect_uri: String,
    /// First serial number of the code devices.
    #[arg(long, default_value_t = 800_000_000)]
    first_serial: u64,
}

/// A person the load generator logs in as.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Person {
    /// National identity number.
    pub nin: String,
    /// Password.
    pub password: String,
    /// Serial of the person's HOTP device.
    pub serial: String,
    /// The device's secret, hex.
    pub secret_hex: String,
    /// Digits of the codes.
    pub digits: u32,
    /// The next counter value to use.
    pub counter: u64,
}

/// The file `setup` writes and `logins` reads (and updates: counters advance).
#[derive(Debug, Serialize, Deserialize)]
pub struct People {
    /// The persons.
    pub people: Vec<Person>,
}

/// Runs `segl --data-dir … [--database-url …] --json ARGS`, optionally feeding stdin, and
/// returns its JSON output.
fn segl(a: &SetupArgs, args: &[&str], stdin: Option<&str>) -> anyhow::Result<Value> {
    let mut cmd = Command::new(&a.segl);
    cmd.arg("--data-dir").arg(&a.data_dir);
    if let Some(u) = &a.database_url {
        cmd.arg("--database-url").arg(u);
    }
    cmd.arg("--json").args(args);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {}", a.segl.display()))?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().context("stdin")?;
        pipe.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "segl {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim())
        .with_context(|| format!("segl {}: output is not JSON: {text}", args.join(" ")))
}

/// A plain (unencrypted) PSKC container with one HOTP key package per person.
fn pskc(people: &[Person]) -> String {
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<pskc:KeyContainer xmlns:pskc=\"urn:ietf:params:xml:ns:keyprov:pskc\" Version=\"1.0\">\n",
    );
    for (i, p) in people.iter().enumerate() {
        let secret = data_encoding::HEXLOWER
            .decode(p.secret_hex.as_bytes())
            .expect("hex we wrote");
        let _ = write!(
            x,
            r#" <pskc:KeyPackage>
  <pskc:DeviceInfo>
   <pskc:Manufacturer>segl benchmark</pskc:Manufacturer>
   <pskc:SerialNo>{serial}</pskc:SerialNo>
  </pskc:DeviceInfo>
  <pskc:Key Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp" Id="bench-hotp-{i}">
   <pskc:AlgorithmParameters>
    <pskc:ResponseFormat Length="{digits}"/>
   </pskc:AlgorithmParameters>
   <pskc:Data>
    <pskc:Secret>
     <pskc:PlainValue>{secret}</pskc:PlainValue>
    </pskc:Secret>
    <pskc:Counter>
     <pskc:PlainValue>{counter}</pskc:PlainValue>
    </pskc:Counter>
   </pskc:Data>
  </pskc:Key>
 </pskc:KeyPackage>
"#,
            serial = p.serial,
            digits = p.digits,
            secret = data_encoding::BASE64.encode(&secret),
            counter = p.counter,
        );
    }
    x.push_str("</pskc:KeyContainer>\n");
    x
}

/// Creates everything and prints `{"client_id","client_secret","redirect_uri","people"}`.
pub fn run(a: &SetupArgs) -> anyhow::Result<()> {
    if a.people == 0 {
        bail!("--people must be at least 1");
    }
    std::fs::create_dir_all(&a.data_dir)?;
    let seed = crate::random_bytes(8);
    let mut x = u64::from_le_bytes(seed.try_into().expect("8 bytes")) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut seen = HashSet::new();
    let mut people = Vec::with_capacity(a.people);
    for i in 0..a.people {
        let nin = loop {
            let n = crate::nin::generate(&mut next);
            debug_assert!(crate::nin::is_valid(&n));
            if crate::nin::is_valid(&n) && seen.insert(n.clone()) {
                break n;
            }
        };
        people.push(Person {
            nin,
            password: format!("Bench-{}-pw7", crate::random_token(18)),
            serial: (a.first_serial + i as u64).to_string(),
            secret_hex: data_encoding::HEXLOWER.encode(&crate::random_bytes(20)),
            digits: 6,
            counter: 0,
        });
    }
    let pskc_path = a.out.with_extension("pskcxml");
    std::fs::write(&pskc_path, pskc(&people))?;
    let imported = segl(a, &["token", "import", path_str(&pskc_path)?], None)?;
    if imported["imported"].as_u64() != Some(a.people as u64) {
        bail!(
            "segl token import: expected {} imported, got {imported}",
            a.people
        );
    }
    for (i, p) in people.iter().enumerate() {
        let name = format!("Bench Person{i}");
        segl(
            a,
            &[
                "person",
                "add",
                "--nin",
                &p.nin,
                "--name",
                &name,
                "--password-stdin",
            ],
            Some(&format!("{}\n", p.password)),
        )?;
        segl(
            a,
            &["token", "assign", "--serial", &p.serial, "--nin", &p.nin],
            None,
        )?;
    }
    let rp = segl(
        a,
        &[
            "rp",
            "add",
            "--name",
            "segl benchmark",
            "--redirect-uri",
            &a.redirect_uri,
            "--auth-method",
            "client_secret_basic",
            "--id-token-alg",
            "ES256",
        ],
        None,
    )?;
    let client_id = rp["client_id"].as_str().context("rp add: no client_id")?;
    let client_secret = rp["client_secret"]
        .as_str()
        .context("rp add: no client_secret")?;
    crate::write_atomic(
        &a.out,
        serde_json::to_string_pretty(&People { people })?.as_bytes(),
    )?;
    println!(
        "{}",
        json!({
            "client_id": client_id,
            "client_secret": client_secret,
            "redirect_uri": a.redirect_uri,
            "people": a.people,
            "people_file": a.out.display().to_string(),
        })
    );
    Ok(())
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str().context("path is not UTF-8")
}
