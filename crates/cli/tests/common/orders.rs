//! eID orders in tests: national identity numbers and passport MRZs made here with their
//! check digits, the order API, and the activation codes from the outbox and the letters.

use serde_json::{Value, json};

use super::*;

/// A valid fødselsnummer for a birth date (`yyyy`, `mm`, `dd`), computed with both mod-11
/// check digits; `nth` picks among the valid individual numbers.
pub fn nin_born(yyyy: i32, mm: u32, dd: u32, nth: usize) -> String {
    let base = if yyyy >= 2000 { 500 } else { 0 };
    let w1 = [3, 7, 6, 1, 8, 9, 4, 5, 2];
    let w2 = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];
    let check = |d: &[u32], w: &[u32]| {
        let k = 11 - w.iter().zip(d).map(|(w, d)| w * d).sum::<u32>() % 11;
        match k {
            11 => Some(0),
            10 => None,
            k => Some(k),
        }
    };
    (base..base + 499)
        .filter_map(|i| {
            let s = format!("{dd:02}{mm:02}{:02}{i:03}", yyyy % 100);
            let mut d: Vec<u32> = s.chars().map(|c| c.to_digit(10).unwrap()).collect();
            d.push(check(&d, &w1)?);
            d.push(check(&d, &w2)?);
            Some(d.iter().map(|x| x.to_string()).collect::<String>())
        })
        .nth(nth)
        .expect("a valid number")
}

/// ICAO 9303 check digit (weights 7, 3, 1; `<` is 0, A is 10).
pub fn check_digit(s: &str) -> char {
    let v = |c: char| match c {
        '0'..='9' => c as u32 - '0' as u32,
        'A'..='Z' => c as u32 - 'A' as u32 + 10,
        _ => 0,
    };
    let sum: u32 = s
        .chars()
        .zip([7, 3, 1].iter().cycle())
        .map(|(c, w)| v(c) * w)
        .sum();
    char::from_digit(sum % 10, 10).unwrap()
}

/// A Norwegian passport's two MRZ lines (TD3).
pub fn passport(surname: &str, given: &str, birth: &str, expiry: &str, nin: &str) -> String {
    let name = format!("{surname}<<{}", given.replace(' ', "<"));
    let line1 = format!("P<NOR{name:<<39}");
    let number = "AB1234567";
    let personal = format!("{nin:<<14}");
    let parts = [
        format!("{number}{}", check_digit(number)),
        format!("{birth}{}", check_digit(birth)),
        format!("{expiry}{}", check_digit(expiry)),
        format!("{personal}{}", check_digit(&personal)),
    ];
    let composite = parts.concat();
    let line2 = format!(
        "{}NOR{}F{}{}{}",
        parts[0],
        parts[1],
        parts[2],
        parts[3],
        check_digit(&composite)
    );
    assert_eq!(line1.len(), 44, "{line1}");
    assert_eq!(line2.len(), 44, "{line2}");
    format!("{line1}\n{line2}")
}

pub fn this_year() -> i32 {
    1970 + (unix_now() / 31_556_952) as i32
}

// ---------------------------------------------------------------------------------------
// Helpers

pub async fn post_json(server: &Server, path: &str, body: &Value) -> Resp {
    Resp::fetch(
        reqwest::Client::new().post(server.url(path)).json(body),
        format!("POST {path}"),
    )
    .await
}

pub async fn get_json(server: &Server, path: &str) -> Resp {
    Resp::fetch(
        reqwest::Client::new().get(server.url(path)),
        format!("GET {path}"),
    )
    .await
}

pub fn order_form(nin: &str, name: &str, evidence: Value) -> Value {
    json!({
        "nin": nin,
        "name": name,
        "phone": "+47 412 34 567",
        "email": "kari@example.no",
        "kind": "app",
        "delivery": "sms_email",
        "evidence": evidence,
    })
}

/// The activation codes (`XXXX-XXXX-XXXX-XXXX`) in a text.
pub fn codes_in(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let ok = |c: u8| c.is_ascii_uppercase() || c.is_ascii_digit();
    (0..b.len().saturating_sub(18))
        .filter(|&i| {
            (0..19).all(|j| {
                if j % 5 == 4 {
                    b[i + j] == b'-'
                } else {
                    ok(b[i + j])
                }
            }) && (i == 0 || !ok(b[i - 1]))
        })
        .map(|i| text[i..i + 19].to_string())
        .collect()
}

/// The codes of an order sent by SMS and email: (SMS code, email code).
pub fn sms_email_codes(segl: &Segl, before: usize) -> (String, String) {
    let msgs = outbox(segl, before + 2);
    let new: Vec<&Value> = msgs
        .iter()
        .skip(before)
        .filter(|m| m["kind"] == "order.activation_code")
        .collect();
    let code = |channel: &str| {
        let m = new
            .iter()
            .find(|m| m["channel"] == channel)
            .unwrap_or_else(|| panic!("no {channel} with codes in {msgs:?}"));
        let c = codes_in(m["body"].as_str().unwrap());
        assert_eq!(c.len(), 1, "one code in {m}");
        c[0].clone()
    };
    (code("sms"), code("email"))
}

/// The text shown by a letter's PDF: its strings (written in hexadecimal, WinAnsi) one per
/// line.
pub fn pdf_text(pdf: &[u8]) -> String {
    let raw = String::from_utf8_lossy(pdf);
    raw.split('<')
        .skip(1)
        .filter_map(|s| {
            let (hex, rest) = s.split_once('>')?;
            if !rest.trim_start().starts_with("Tj") || hex.len() % 2 != 0 {
                return None;
            }
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
                .collect::<Option<Vec<u8>>>()?;
            Some(bytes.iter().map(|&b| b as char).collect::<String>())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn questions() -> Value {
    json!([
        {"question": "What was the name of your first pet?", "answer": "Pusur"},
        {"question": "In which town did you go to school?", "answer": "  Hønefoss "},
        {"question": "What is your favourite dish?", "answer": "Raspeballer"},
    ])
}

pub const NEW_PASSWORD: &str = "Lofoten-Tindar-Morild-7";

/// Orders a code device eID for a new adult with a matching passport (codes by SMS and
/// email) and activates it with [`NEW_PASSWORD`] and [`questions`]; the installation must
/// have a code device in stock. Returns the device's serial.
pub async fn activated_card_holder(
    segl: &Segl,
    server: &Server,
    nin: &str,
    surname: &str,
    given: &str,
) -> String {
    let birth = format!("{}{}{}", &nin[4..6], &nin[2..4], &nin[0..2]);
    let mrz = passport(
        &surname.to_uppercase(),
        &given.to_uppercase(),
        &birth,
        "341231",
        nin,
    );
    let mut form = order_form(nin, &format!("{given} {surname}"), json!({"mrz": mrz}));
    form["kind"] = json!("card");
    let before = outbox(segl, 0).len();
    let r = post_json(server, "/api/v1/orders", &form).await;
    r.expect_status(201);
    assert_eq!(r.json()["state"], "approved", "{}", r.json());
    let number = r.json()["number"].as_str().unwrap().to_string();
    let (sms, email) = sms_email_codes(segl, before);
    let r = post_json(
        server,
        &format!("/api/v1/orders/{number}/activate"),
        &json!({"code": sms, "second_code": email, "password": NEW_PASSWORD, "questions": questions()}),
    )
    .await;
    r.expect_status(200);
    r.json()["code_device"]
        .as_str()
        .expect("a code device")
        .to_string()
}
