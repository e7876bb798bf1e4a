//! Numbers and times written the way Pushgateway (Go) writes them, so pages
//! and API answers read the same: `1.5e+06`, `NaN`, `+Inf`, and RFC 3339
//! timestamps with nanoseconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Appends `value` as Go's `strconv.FormatFloat(value, 'g', -1, 64)` does
/// (the shortest digits that read back the same; an exponent from 1e+06
/// and below 1e-04), with Prometheus's spellings of the special values.
pub(crate) fn write_float(value: f64, out: &mut String) {
    if value.is_nan() {
        out.push_str("NaN");
        return;
    }
    if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    if value == 0.0 {
        out.push('0');
        return;
    }
    // Rust's `{:e}` gives the same shortest digits: `-1.2345e-7`.
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: Vec<u8> = mantissa.bytes().filter(|b| *b != b'.').collect();
    if negative {
        out.push('-');
    }
    if !(-4..6).contains(&exponent) {
        out.push(char::from(digits[0]));
        if digits.len() > 1 {
            out.push('.');
            digits[1..].iter().for_each(|&d| out.push(char::from(d)));
        }
        out.push('e');
        out.push(if exponent < 0 { '-' } else { '+' });
        let magnitude = exponent.unsigned_abs();
        if magnitude < 10 {
            out.push('0');
        }
        out.push_str(&magnitude.to_string());
        return;
    }
    // Plain notation: the point goes after `exponent + 1` digits.
    let point = exponent + 1;
    if point <= 0 {
        out.push_str("0.");
        (0..-point).for_each(|_| out.push('0'));
        digits.iter().for_each(|&d| out.push(char::from(d)));
        return;
    }
    let point = point as usize;
    for i in 0..point.max(digits.len()) {
        if i == point {
            out.push('.');
        }
        out.push(char::from(*digits.get(i).unwrap_or(&b'0')));
    }
}

/// [`write_float`] into a new string.
pub(crate) fn float(value: f64) -> String {
    let mut out = String::new();
    write_float(value, &mut out);
    out
}

/// Seconds since the Unix epoch, as a float (the value of
/// `push_time_seconds`).
pub(crate) fn unix_seconds(time: SystemTime) -> f64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// Milliseconds since the Unix epoch (0 before it).
pub(crate) fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The time `millis` after the epoch.
pub(crate) fn from_unix_millis(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis)
}

/// RFC 3339 in UTC with as many fractional digits as needed, as Go's
/// `time.Time` marshals to JSON: `2024-05-01T12:00:00.25Z`.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs();
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    );
    let nanos = since.subsec_nanos();
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_floats_like_go() {
        for (value, expected) in [
            (0.0, "0"),
            (1.0, "1"),
            (-1.0, "-1"),
            (3.0, "3"),
            (1.5, "1.5"),
            (1500.0, "1500"),
            (123_456.0, "123456"),
            (1_000_000.0, "1e+06"),
            (1_234_567.0, "1.234567e+06"),
            (1.795_475_582_488_090_5e9, "1.7954755824880905e+09"),
            (0.0001, "0.0001"),
            (0.000_012_5, "1.25e-05"),
            (0.25, "0.25"),
            (-0.031_25, "-0.03125"),
            (1e21, "1e+21"),
            (1e-300, "1e-300"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            assert_eq!(float(value), expected, "{value:e}");
        }
    }

    #[test]
    fn writes_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::new(1_714_564_800, 250_000_000);
        assert_eq!(rfc3339(t), "2024-05-01T12:00:00.25Z");
        let t = UNIX_EPOCH + Duration::new(951_782_400, 1);
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.000000001Z");
        assert_eq!(
            rfc3339(from_unix_millis(unix_millis(t))),
            "2000-02-29T00:00:00Z"
        );
    }
}
