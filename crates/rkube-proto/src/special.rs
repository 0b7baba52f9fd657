//! JSON spellings of metav1.Time, metav1.MicroTime and metav1.Duration.

use jiff::Timestamp;
use jiff::tz::Offset;

/// Seconds of Go's zero `time.Time` (0001-01-01T00:00:00Z), which upstream writes as JSON null.
pub(crate) const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// metav1.Time as JSON: UTC, whole seconds (upstream drops nanoseconds on both sides).
pub(crate) fn format_time(seconds: i64) -> Result<String, String> {
    let ts =
        Timestamp::from_second(seconds).map_err(|_| format!("time {seconds}s out of range"))?;
    Ok(format!("{}Z", utc(ts)))
}

/// metav1.MicroTime as JSON: UTC with exactly six fractional digits.
pub(crate) fn format_micro_time(seconds: i64, nanos: i64) -> Result<String, String> {
    let total = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
    let micros = total.div_euclid(1000);
    let ts = i64::try_from(micros)
        .ok()
        .and_then(|m| Timestamp::from_microsecond(m).ok())
        .ok_or_else(|| format!("time {seconds}s {nanos}ns out of range"))?;
    // The civil fraction counts forward from the second, also before 1970.
    Ok(format!("{}.{:06}Z", utc(ts), micros.rem_euclid(1_000_000)))
}

/// `YYYY-MM-DDTHH:MM:SS` in UTC, formatted by hand so nothing can fail.
fn utc(ts: Timestamp) -> String {
    let t = Offset::UTC.to_datetime(ts);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Parses an RFC 3339 time (any offset, optional fraction) into Unix seconds and nanoseconds.
pub(crate) fn parse_time(text: &str) -> Result<(i64, i32), String> {
    let ts: Timestamp = text
        .parse()
        .map_err(|e| format!("{text:?} is not an RFC 3339 time: {e}"))?;
    // Like Go's Unix() and Nanosecond(): whole seconds rounded down, nanoseconds >= 0.
    let (seconds, nanos) = (ts.as_second(), ts.subsec_nanosecond());
    Ok(if nanos < 0 {
        (seconds - 1, nanos + 1_000_000_000)
    } else {
        (seconds, nanos)
    })
}

/// Formats nanoseconds the way Go's `time.Duration.String` does ("1h0m0s", "1.5s", "300ms").
pub(crate) fn format_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    if u < 1_000_000_000 {
        let (digits, unit) = match u {
            0..1_000 => (0, "ns"),
            1_000..1_000_000 => (3, "µs"),
            _ => (6, "ms"),
        };
        return format!("{sign}{}{unit}", fixed(u, digits));
    }
    let secs = u / 1_000_000_000;
    let seconds = fixed(secs % 60 * 1_000_000_000 + u % 1_000_000_000, 9);
    let minutes = secs / 60 % 60;
    let hours = secs / 3600;
    if hours > 0 {
        format!("{sign}{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{sign}{minutes}m{seconds}s")
    } else {
        format!("{sign}{seconds}s")
    }
}

/// `value / 10^digits` with the fraction's trailing zeros (and a bare point) left out.
fn fixed(value: u64, digits: u32) -> String {
    let scale = 10u64.pow(digits);
    let whole = value / scale;
    let frac = value % scale;
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:0width$}", width = digits as usize);
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// Parses a Go duration string ("1h30m", "-1.5s", "300ms", "0") into nanoseconds.
pub(crate) fn parse_duration(text: &str) -> Result<i64, String> {
    let bad = || format!("{text:?} is not a duration");
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(tail) => {
                let n = tail.bytes().take_while(u8::is_ascii_digit).count();
                tail.split_at(n)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(bad());
        }
        let unit_len = after
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(after.len(), |(i, _)| i);
        let (unit, after) = after.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(format!("{text:?} is not a duration: unknown unit {unit:?}")),
        };
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| bad())?
        };
        let mut value = whole.checked_mul(scale).ok_or_else(bad)?;
        // Fraction digits past nanosecond resolution cannot change the result.
        let mut place = scale;
        for digit in frac_part.bytes().take(20) {
            place /= 10;
            value = value.saturating_add(u128::from(digit - b'0') * place);
        }
        total = total.checked_add(value).ok_or_else(bad)?;
        if total > 1u128 << 63 {
            return Err(format!("{text:?} is out of range for a duration"));
        }
        rest = after;
    }
    let signed = if negative {
        -i128::try_from(total).map_err(|_| bad())?
    } else {
        i128::try_from(total).map_err(|_| bad())?
    };
    i64::try_from(signed).map_err(|_| format!("{text:?} is out of range for a duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_format_like_go() {
        assert_eq!(format_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(format_duration(90_000_000_000), "1m30s");
        assert_eq!(format_duration(1_500_000_000), "1.5s");
        assert_eq!(format_duration(300_000_000), "300ms");
        assert_eq!(format_duration(1_500), "1.5µs");
        assert_eq!(format_duration(7), "7ns");
        assert_eq!(format_duration(-2_000_000_000), "-2s");
        assert_eq!(format_duration(i64::MIN), "-2562047h47m16.854775808s");
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("1h0m0s"), Ok(3_600_000_000_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("-1.5s"), Ok(-1_500_000_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration(".5ms"), Ok(500_000));
        assert_eq!(parse_duration("2562047h47m16.854775807s"), Ok(i64::MAX));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("9999999999999999999999h").is_err());
        assert!(parse_duration("3000000h").is_err());
    }

    #[test]
    fn times_format_in_utc_with_the_right_precision() {
        assert_eq!(
            format_time(1_767_366_245).as_deref(),
            Ok("2026-01-02T15:04:05Z")
        );
        assert_eq!(
            format_micro_time(1_767_366_245, 123_456_789).as_deref(),
            Ok("2026-01-02T15:04:05.123456Z")
        );
        assert_eq!(
            parse_time("2026-01-02T16:04:05+01:00"),
            Ok((1_767_366_245, 0))
        );
        assert!(format_time(i64::MAX).is_err());
        assert_eq!(
            format_time(GO_ZERO_TIME_SECONDS + 1).as_deref(),
            Ok("0001-01-01T00:00:01Z")
        );
        assert_eq!(
            format_micro_time(-1, 999_999_000).as_deref(),
            Ok("1969-12-31T23:59:59.999999Z")
        );
    }
}
