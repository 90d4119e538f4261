//! Letters: each becomes a one-page A4 PDF, `{print_dir}/{id}.pdf` (owner-only, written
//! through a temporary file and renamed), for whatever prints and posts them. The page
//! has the recipient's address block where a window envelope shows it, the date, a subject
//! from the message kind, the text, and the outbox id as reference, so support can trace
//! a letter by id. Helvetica in WinAnsiEncoding covers Norwegian letters.

use std::path::PathBuf;

use lopdf::content::{Content, Operation};
use lopdf::{Document, Object, Stream, StringFormat, dictionary};
use segl_store::outbox::Message;

use super::{Accepted, SendError};

/// Characters per body line (11 pt Helvetica across 455 pt).
const WRAP: usize = 85;
/// Body lines that fit between the subject and the footer.
const MAX_BODY_LINES: usize = 34;
/// Lines of a postal address.
const ADDRESS_LINES: std::ops::RangeInclusive<usize> = 2..=6;
/// Characters per address line.
const ADDRESS_LINE_CHARS: usize = 60;

/// Writes letters as PDFs into a print folder.
pub struct PrintFolder {
    dir: PathBuf,
}

impl PrintFolder {
    /// A print folder at `dir` (created, 0700, at the first letter).
    pub fn new(dir: PathBuf) -> PrintFolder {
        PrintFolder { dir }
    }

    /// Renders and writes one letter.
    pub async fn send(&self, m: &Message, now: i64) -> Result<Accepted, SendError> {
        let pdf = render(m, now)?;
        let dir = self.dir.clone();
        let name = format!("{}.pdf", m.id);
        tokio::task::spawn_blocking(move || super::write_private(&dir, &name, &pdf))
            .await
            .map_err(|_| SendError::Retry("letter: writer task failed".into()))?
            .map_err(|e| super::io_error("letter", &e))?;
        Ok(Accepted::default())
    }
}

/// Checks and normalises a postal address: 2 to 6 lines (separated by newlines or
/// commas) of at most 60 printable characters each, all printable in the letter's font.
/// Returns the lines joined by `\n`.
pub fn parse_address(s: &str) -> Result<String, String> {
    let lines: Vec<&str> = s
        .split(['\n', ','])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if !ADDRESS_LINES.contains(&lines.len()) {
        return Err(format!(
            "a postal address has 2 to 6 lines (separated by commas or newlines), this one {}",
            lines.len()
        ));
    }
    for l in &lines {
        if l.chars().count() > ADDRESS_LINE_CHARS {
            return Err(format!(
                "an address line has at most {ADDRESS_LINE_CHARS} characters"
            ));
        }
        if l.chars().any(|c| c.is_control() || win_ansi(c).is_none()) {
            return Err("the address has a character a letter cannot print".into());
        }
    }
    Ok(lines.join("\n"))
}

/// The one-page PDF of a letter.
pub fn render(m: &Message, now: i64) -> Result<Vec<u8>, SendError> {
    let date = time::OffsetDateTime::from_unix_timestamp(now)
        .map_err(|_| SendError::Permanent("letter: bad date".into()))?;
    let date = format!(
        "{:02}.{:02}.{}",
        date.day(),
        u8::from(date.month()),
        date.year()
    );
    let body = wrap(&m.body, WRAP);
    if body.len() > MAX_BODY_LINES {
        return Err(SendError::Permanent(
            "letter: the text does not fit on one page".into(),
        ));
    }

    let mut ops = Vec::new();
    let mut text = |font: &str, size: i64, x: i64, y: i64, s: &str| {
        ops.extend([
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec![font.into(), size.into()]),
            Operation::new("Td", vec![x.into(), y.into()]),
            Operation::new(
                "Tj",
                vec![Object::String(encode(s), StringFormat::Hexadecimal)],
            ),
            Operation::new("ET", vec![]),
        ]);
    };
    text("F2", 10, 70, 800, "segl");
    for (i, line) in m.recipient.lines().enumerate() {
        text("F1", 11, 70, 730 - 14 * i as i64, line);
    }
    text("F1", 10, 400, 730, &format!("Dato: {date}"));
    text("F2", 13, 70, 620, super::subject(&m.kind));
    for (i, line) in body.iter().enumerate() {
        text("F1", 11, 70, 590 - 15 * i as i64, line);
    }
    text("F1", 8, 70, 40, &format!("Referanse: {}", m.id));
    let content = Content { operations: ops }
        .encode()
        .map_err(|_| SendError::Permanent("letter: cannot lay out the page".into()))?;

    let mut doc = Document::with_version("1.7");
    let pages_id = doc.new_object_id();
    let font = |name: &str| {
        dictionary! {
            "Type" => "Font",
            "Subtype" => "Type1",
            "BaseFont" => Object::Name(name.as_bytes().to_vec()),
            "Encoding" => "WinAnsiEncoding",
        }
    };
    let regular = doc.add_object(font("Helvetica"));
    let bold = doc.add_object(font("Helvetica-Bold"));
    let resources = doc.add_object(dictionary! {
        "Font" => dictionary! { "F1" => regular, "F2" => bold },
    });
    let contents = doc.add_object(Stream::new(dictionary! {}, content));
    let page = doc.add_object(dictionary! {
        "Type" => "Page",
        "Parent" => pages_id,
        "Contents" => contents,
        "Resources" => resources,
        "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
    });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => vec![page.into()],
            "Count" => 1,
        }),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    let mut out = Vec::new();
    doc.save_to(&mut out)
        .map_err(|_| SendError::Permanent("letter: cannot write the PDF".into()))?;
    Ok(out)
}

/// Words wrapped into lines of at most `width` characters (longer words are cut);
/// newlines in the text start new lines, and an empty line stays one.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    for para in text.lines() {
        let mut line = String::new();
        for word in para.split_whitespace() {
            let mut word: Vec<char> = word.chars().collect();
            while word.len() > width {
                if !line.is_empty() {
                    out.push(std::mem::take(&mut line));
                }
                out.push(word.drain(..width).collect());
            }
            let word: String = word.into_iter().collect();
            if word.is_empty() {
                continue;
            }
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
                out.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&word);
        }
        out.push(line);
    }
    out
}

/// WinAnsiEncoding bytes of a string; a character it lacks becomes `?`.
fn encode(s: &str) -> Vec<u8> {
    s.chars().map(|c| win_ansi(c).unwrap_or(b'?')).collect()
}

/// The WinAnsiEncoding (Windows-1252) byte of a character, if it has one.
fn win_ansi(c: char) -> Option<u8> {
    let b = match c {
        ' '..='~' | '\u{a0}'..='\u{ff}' => c as u32 as u8,
        '€' => 0x80,
        '‚' => 0x82,
        '„' => 0x84,
        '…' => 0x85,
        '‘' => 0x91,
        '’' => 0x92,
        '“' => 0x93,
        '”' => 0x94,
        '•' => 0x95,
        '–' => 0x96,
        '—' => 0x97,
        _ => return None,
    };
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &str) -> Message {
        Message {
            id: "0190a0b0-0000-7000-8000-000000000001".into(),
            person_id: None,
            channel: "letter".into(),
            recipient: "Kari Nordmann\nStorgata 1\n0150 Oslo".into(),
            kind: "app.activation_letter".into(),
            body: body.into(),
            state: "queued".into(),
            attempts: 0,
            created_at: 0,
            sent_at: None,
            next_at: 0,
            last_error: None,
            provider_id: None,
            last_attempt_at: None,
            resent_from: None,
        }
    }

    #[test]
    fn a_letter_is_a_readable_one_page_pdf() {
        let pdf = render(
            &message("Din aktiveringskode er ABCD-EFGH (gyldig i 30 dager). Hilsen (segl) \\ æøå"),
            1_767_225_600,
        )
        .unwrap();
        let doc = Document::load_mem(&pdf).unwrap();
        assert_eq!(doc.get_pages().len(), 1);
        let text = doc.extract_text(&[1]).unwrap();
        for needle in [
            "Kari Nordmann",
            "0150 Oslo",
            "01.01.2026",
            "ABCD-EFGH",
            "(segl) \\",
            "æøå",
            "Referanse: 0190a0b0",
        ] {
            assert!(text.contains(needle), "{needle} in {text}");
        }
    }

    #[test]
    fn too_long_a_text_is_refused() {
        let long = "ord ".repeat(40 * 20);
        assert!(matches!(
            render(&message(&long), 0),
            Err(SendError::Permanent(_))
        ));
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_address("Kari Nordmann, Storgata 1, 0150 Oslo").unwrap(),
            "Kari Nordmann\nStorgata 1\n0150 Oslo"
        );
        assert!(parse_address("Oslo").is_err());
        assert!(parse_address("a,b,c,d,e,f,g").is_err());
        assert!(parse_address(&format!("{}, 0150 Oslo", "x".repeat(61))).is_err());
        assert!(parse_address("Kari\u{7}, 0150 Oslo").is_err());
        assert!(parse_address("Kari 😀, 0150 Oslo").is_err());
    }

    #[test]
    fn wrapping() {
        assert_eq!(wrap("a b c", 3), ["a b", "c"]);
        assert_eq!(wrap("abcdefg", 3), ["abc", "def", "g"]);
        assert_eq!(wrap("a\n\nb", 10), ["a", "", "b"]);
    }
}
