//! Go-style durations (`90m`, `1h30m`, `72h`), the format the CRDs' CEL rules accept.

use std::fmt;
use std::str::FromStr;

use chrono::Duration;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a duration string is not a Go duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a duration such as 30m, 4h or 1h30m: {problem}")]
pub struct DurationError {
    input: String,
    problem: &'static str,
}

/// A Go duration read once where it enters (config files, specs): its value, and the text as
/// written for messages and round trips.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoDuration {
    text: String,
    value: Duration,
}

impl GoDuration {
    /// Whole seconds, written in the largest unit that divides them (`300` is `5m`).
    pub fn from_secs(secs: u32) -> Self {
        let text = match secs {
            0 => "0s".to_owned(),
            s if s % 3600 == 0 => format!("{}h", s / 3600),
            s if s % 60 == 0 => format!("{}m", s / 60),
            s => format!("{s}s"),
        };
        Self {
            text,
            value: Duration::seconds(i64::from(secs)),
        }
    }

    pub fn value(&self) -> Duration {
        self.value
    }

    /// As a `std` duration; never negative, since the parser accepts no sign.
    pub fn to_std(&self) -> std::time::Duration {
        self.value.to_std().unwrap_or_default()
    }
}

impl FromStr for GoDuration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self {
            value: parse_go_duration(text)?,
            text: text.to_owned(),
        })
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses a non-negative Go duration: one or more `<number><unit>` parts with units `ns`,
/// `us`, `µs`, `ms`, `s`, `m`, `h`; `0` alone is allowed.
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    let error = |problem| DurationError {
        input: input.to_owned(),
        problem,
    };
    if input == "0" {
        return Ok(Duration::zero());
    }
    if input.is_empty() {
        return Err(error("empty"));
    }
    let mut rest = input;
    let mut total = Duration::zero();
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(|| error("missing unit"))?;
        if digits == 0 {
            return Err(error("expected a number"));
        }
        let number: f64 = rest[..digits]
            .parse()
            .map_err(|_| error("invalid number"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit: f64 = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(error("unknown unit (use ns, us, ms, s, m or h)")),
        };
        rest = &rest[unit_len..];
        let nanos = number * nanos_per_unit;
        if !nanos.is_finite() || nanos > i64::MAX as f64 {
            return Err(error("too large"));
        }
        total = total
            .checked_add(&Duration::nanoseconds(nanos as i64))
            .ok_or_else(|| error("too large"))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_go_duration("90m"), Ok(Duration::minutes(90)));
        assert_eq!(parse_go_duration("1h30m"), Ok(Duration::minutes(90)));
        assert_eq!(parse_go_duration("72h"), Ok(Duration::hours(72)));
        assert_eq!(parse_go_duration("1.5s"), Ok(Duration::milliseconds(1500)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::zero()));
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in ["", "3d", "h", "10", "1h-5m", "soon", "1e400h"] {
            assert!(parse_go_duration(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn a_duration_reads_once_and_keeps_its_text() {
        let read: GoDuration = serde_json::from_str("\"1h30m\"").expect("valid");
        assert_eq!(read.value(), Duration::minutes(90));
        assert_eq!(read.to_std(), std::time::Duration::from_secs(5400));
        assert_eq!(
            serde_json::to_string(&read).expect("serializes"),
            "\"1h30m\""
        );
        let error = serde_json::from_str::<GoDuration>("\"soon\"").expect_err("not a duration");
        assert!(error.to_string().contains("not a duration"), "{error}");
        assert_eq!(GoDuration::from_secs(300).to_string(), "5m");
        assert_eq!(GoDuration::from_secs(7200).to_string(), "2h");
        assert_eq!(GoDuration::from_secs(45).to_string(), "45s");
    }
}
