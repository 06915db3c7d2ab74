//! Go-style durations (`90m`, `1h30m`, `72h`), the format the CRDs' CEL rules accept.

use chrono::Duration;

/// Why a duration string is not a Go duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a duration such as 30m, 4h or 1h30m: {problem}")]
pub struct DurationError {
    input: String,
    problem: &'static str,
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
}
