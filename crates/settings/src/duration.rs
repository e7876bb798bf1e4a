//! Durations in Prometheus's syntax (`90s`, `5m`, `1h30m`, `500ms`), the way
//! operators already write them in `prometheus.yml`.

use std::fmt;
use std::time::Duration;

/// A duration written in Prometheus's syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PromDuration(pub Duration);

/// Why a duration was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a duration (write it like 500ms, 30s, 5m, 1h30m)")]
pub struct DurationError(String);

const UNITS: [(&str, u64); 7] = [
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
    ("w", 604_800_000),
    ("y", 31_536_000_000),
];

impl PromDuration {
    /// Parses `text`; units must come largest first, each at most once.
    pub fn parse(text: &str) -> Result<PromDuration, DurationError> {
        let error = || DurationError(text.to_owned());
        match text {
            "0" => return Ok(PromDuration(Duration::ZERO)),
            "" => return Err(error()),
            _ => {}
        }
        let mut rest = text;
        let mut millis: u64 = 0;
        let mut last_unit = 0;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(error());
            }
            let number: u64 = rest[..digits].parse().map_err(|_| error())?;
            rest = &rest[digits..];
            // `ms` before `m`, so the longest unit name wins.
            let (index, (unit, scale)) = UNITS
                .iter()
                .enumerate()
                .find(|(_, (unit, _))| {
                    rest.starts_with(unit) && !(*unit == "m" && rest.starts_with("ms"))
                })
                .ok_or_else(error)?;
            // Larger units come first: their order number is smaller.
            let order = UNITS.len() - index;
            if order <= last_unit {
                return Err(error());
            }
            last_unit = order;
            rest = &rest[unit.len()..];
            millis = number
                .checked_mul(*scale)
                .and_then(|m| millis.checked_add(m))
                .ok_or_else(error)?;
        }
        Ok(PromDuration(Duration::from_millis(millis)))
    }
}

impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut millis = self.0.as_millis();
        if millis == 0 {
            return f.write_str("0s");
        }
        for (unit, scale) in UNITS.iter().rev() {
            let scale = u128::from(*scale);
            if millis >= scale {
                write!(f, "{}{unit}", millis / scale)?;
                millis %= scale;
            }
        }
        Ok(())
    }
}

impl<'de> serde::Deserialize<'de> for PromDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        PromDuration::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl From<PromDuration> for Duration {
    fn from(d: PromDuration) -> Duration {
        d.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_prometheus_durations() {
        let ms = |text| PromDuration::parse(text).map(|d| d.0.as_millis());
        assert_eq!(ms("500ms"), Ok(500));
        assert_eq!(ms("30s"), Ok(30_000));
        assert_eq!(ms("5m"), Ok(300_000));
        assert_eq!(ms("1h30m"), Ok(5_400_000));
        assert_eq!(ms("1m500ms"), Ok(60_500));
        assert_eq!(ms("0"), Ok(0));
        for bad in [
            "",
            "5",
            "s",
            "1.5s",
            "30m1h",
            "5s5s",
            "-1s",
            "1 s",
            "99999999999999999y",
        ] {
            assert!(ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prints_back() {
        assert_eq!(PromDuration::parse("1h30m").unwrap().to_string(), "1h30m");
        assert_eq!(
            PromDuration(Duration::from_millis(1500)).to_string(),
            "1s500ms"
        );
    }
}
