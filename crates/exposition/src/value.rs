//! Number and timestamp syntax, checked without converting on the hot path.
//!
//! Values follow Go's `strconv.ParseFloat` as Prometheus uses it: decimal
//! numbers with an optional exponent, and `NaN`, `Inf` and `Infinity` in any
//! case (a sign only before the infinities). Hexadecimal floats and digit
//! underscores, which Go also reads, are refused: no exporter writes them.

/// Whether `text` is a decimal number: `[+-](digits[.digits]|.digits)[e[+-]digits]`.
pub(crate) fn is_decimal(text: &[u8]) -> bool {
    let mut i = usize::from(matches!(text.first(), Some(b'+' | b'-')));
    let int_start = i;
    while i < text.len() && text[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - int_start;
    if i < text.len() && text[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < text.len() && text[i].is_ascii_digit() {
            i += 1;
        }
        digits += i - frac_start;
    }
    if digits == 0 {
        return false;
    }
    if i < text.len() && matches!(text[i], b'e' | b'E') {
        i += 1;
        if i < text.len() && matches!(text[i], b'+' | b'-') {
            i += 1;
        }
        let exp_start = i;
        while i < text.len() && text[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == text.len()
}

/// The special values, in their canonical spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Special {
    NaN,
    PosInf,
    NegInf,
}

impl Special {
    pub(crate) const fn canonical(self) -> &'static str {
        match self {
            Special::NaN => "NaN",
            Special::PosInf => "+Inf",
            Special::NegInf => "-Inf",
        }
    }
}

/// Reads `NaN`, `[+-]Inf` and `[+-]Infinity`, case-insensitively.
pub(crate) fn special(text: &[u8]) -> Option<Special> {
    if text.eq_ignore_ascii_case(b"nan") {
        return Some(Special::NaN);
    }
    let (negative, word) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if word.eq_ignore_ascii_case(b"inf") || word.eq_ignore_ascii_case(b"infinity") {
        Some(if negative {
            Special::NegInf
        } else {
            Special::PosInf
        })
    } else {
        None
    }
}

/// Whether `text` is a sample value.
pub(crate) fn is_float(text: &[u8]) -> bool {
    // Most values are plain integers: one pass and done.
    if !text.is_empty() && text.iter().all(u8::is_ascii_digit) {
        return true;
    }
    is_decimal(text) || special(text).is_some()
}

/// `text` as a number, `None` when it is not one.
pub(crate) fn parse_float(text: &str) -> Option<f64> {
    match special(text.as_bytes()) {
        Some(Special::NaN) => Some(f64::NAN),
        Some(Special::PosInf) => Some(f64::INFINITY),
        Some(Special::NegInf) => Some(f64::NEG_INFINITY),
        None if is_decimal(text.as_bytes()) => text.parse().ok(),
        None => None,
    }
}

/// Whether `text` is a text-format timestamp: an integer number of
/// milliseconds that fits in 64 bits.
pub(crate) fn is_millis(text: &str) -> bool {
    text.parse::<i64>().is_ok()
}

/// Whether `text` is an OpenMetrics timestamp: a decimal number of seconds.
pub(crate) fn is_seconds(text: &str) -> bool {
    is_decimal(text.as_bytes())
}

/// Writes integer milliseconds as exact decimal seconds.
pub(crate) fn write_millis_as_seconds(millis: &str, out: &mut Vec<u8>) {
    let (sign, digits) = match millis.as_bytes().first() {
        Some(b'-') => ("-", &millis[1..]),
        Some(b'+') => ("", &millis[1..]),
        _ => ("", millis),
    };
    let digits = digits.trim_start_matches('0');
    out.extend_from_slice(sign.as_bytes());
    if digits.len() <= 3 {
        out.push(b'0');
        if !digits.is_empty() {
            out.push(b'.');
            out.extend(std::iter::repeat_n(b'0', 3 - digits.len()));
            out.extend_from_slice(digits.as_bytes());
        }
    } else {
        let (whole, fraction) = digits.split_at(digits.len() - 3);
        out.extend_from_slice(whole.as_bytes());
        if fraction != "000" {
            out.push(b'.');
            out.extend_from_slice(fraction.as_bytes());
        }
    }
}

/// Writes decimal seconds as integer milliseconds, rounded to the nearest
/// millisecond.
pub(crate) fn write_seconds_as_millis(seconds: &str, out: &mut Vec<u8>) {
    let millis = (parse_float(seconds).unwrap_or(0.0) * 1000.0).round() as i64;
    let mut buffer = itoa_buffer();
    out.extend_from_slice(format_i64(millis, &mut buffer));
}

fn itoa_buffer() -> [u8; 20] {
    [0; 20]
}

fn format_i64(value: i64, buffer: &mut [u8; 20]) -> &[u8] {
    let mut n = value.unsigned_abs();
    let mut i = buffer.len();
    loop {
        i -= 1;
        buffer[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if value < 0 {
        i -= 1;
        buffer[i] = b'-';
    }
    &buffer[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_numbers_as_go_does() {
        for ok in [
            "0",
            "12",
            "-1",
            "+1",
            "1.5",
            ".5",
            "5.",
            "1e3",
            "1E+06",
            "-2.5e-3",
            "NaN",
            "nan",
            "+Inf",
            "-Inf",
            "Inf",
            "inf",
            "-infinity",
            "Infinity",
        ] {
            assert!(is_float(ok.as_bytes()), "{ok} should be a number");
        }
        for bad in [
            "", "-", ".", "e3", "1e", "1e+", "1.2.3", "0x10", "1_000", "+NaN", "abc", "1 ", "--1",
        ] {
            assert!(!is_float(bad.as_bytes()), "{bad} should not be a number");
        }
        assert_eq!(parse_float("-Inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_float("2.5e1"), Some(25.0));
        assert!(parse_float("NaN").is_some_and(f64::is_nan));
        assert_eq!(parse_float("x"), None);
    }

    #[test]
    fn timestamps() {
        assert!(is_millis("1395066363000"));
        assert!(is_millis("-5"));
        assert!(!is_millis("1.5"));
        assert!(!is_millis("99999999999999999999"));
        assert!(is_seconds("1395066363.5"));
        assert!(!is_seconds("NaN"));
    }

    #[test]
    fn converts_timestamps_exactly() {
        let convert = |millis: &str| {
            let mut out = Vec::new();
            write_millis_as_seconds(millis, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(convert("1395066363000"), "1395066363");
        assert_eq!(convert("1395066363042"), "1395066363.042");
        assert_eq!(convert("42"), "0.042");
        assert_eq!(convert("0"), "0");
        assert_eq!(convert("-1500"), "-1.500");
        let back = |seconds: &str| {
            let mut out = Vec::new();
            write_seconds_as_millis(seconds, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(back("1395066363.042"), "1395066363042");
        assert_eq!(back("-1.5"), "-1500");
        assert_eq!(back("0"), "0");
    }
}
