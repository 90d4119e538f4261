//! Norwegian national identity numbers (fødselsnummer) for the benchmark's persons:
//! DDMMYY, a three-digit individual number and two mod-11 check digits.

const W1: [u32; 9] = [3, 7, 6, 1, 8, 9, 4, 5, 2];
const W2: [u32; 10] = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];

/// The check digit over `digits` with `weights`, or `None` when it would be 10 (no valid
/// number has those first digits).
fn check_digit(digits: &[u32], weights: &[u32]) -> Option<u32> {
    let sum: u32 = digits.iter().zip(weights).map(|(d, w)| d * w).sum();
    match 11 - sum % 11 {
        11 => Some(0),
        10 => None,
        k => Some(k),
    }
}

/// Whether `s` is an 11-digit number with valid check digits.
pub fn is_valid(s: &str) -> bool {
    let d: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    s.len() == 11
        && d.len() == 11
        && check_digit(&d[..9], &W1) == Some(d[9])
        && check_digit(&d[..10], &W2) == Some(d[10])
}

/// A random valid number of someone born 1950–1999 (individual numbers 000–499 belong to
/// births 1900–1999). `next` yields random numbers.
pub fn generate(mut next: impl FnMut() -> u64) -> String {
    loop {
        let day = 1 + next() % 28;
        let month = 1 + next() % 12;
        let year = 50 + next() % 50;
        let individual = next() % 500;
        let s = format!("{day:02}{month:02}{year:02}{individual:03}");
        let mut d: Vec<u32> = s.chars().map(|c| c.to_digit(10).unwrap_or(0)).collect();
        let Some(k1) = check_digit(&d, &W1) else {
            continue;
        };
        d.push(k1);
        let Some(k2) = check_digit(&d, &W2) else {
            continue;
        };
        return format!("{s}{k1}{k2}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_numbers() {
        // Published example numbers with valid check digits.
        assert!(is_valid("01010750160"));
        assert!(!is_valid("01010750161"));
        assert!(!is_valid("0101075016"));
    }

    #[test]
    fn generated_numbers_are_valid() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..1000 {
            let n = generate(|| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            });
            assert!(is_valid(&n), "{n}");
        }
    }
}
