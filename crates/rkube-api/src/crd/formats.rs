//! The string formats a custom resource schema may name (`format:`), checked as upstream's
//! strfmt registry checks them; formats it does not know are not checked.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Whether `s` is a valid value of `format`.
pub fn is_valid(format: &str, s: &str) -> bool {
    match format {
        "date-time" | "datetime" => s.parse::<jiff::Timestamp>().is_ok(),
        "date" => s.len() == 10 && s.parse::<jiff::civil::Date>().is_ok(),
        "ipv4" => s.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<Ipv6Addr>().is_ok(),
        "cidr" => is_cidr(s),
        "uuid" => is_uuid(s, None),
        "uuid3" => is_uuid(s, Some('3')),
        "uuid4" => is_uuid(s, Some('4')),
        "uuid5" => is_uuid(s, Some('5')),
        "byte" => is_base64(s),
        "hostname" => is_hostname(s),
        "mac" => is_mac(s),
        "email" => is_email(s),
        "duration" => is_duration(s),
        _ => true,
    }
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    (ip.parse::<Ipv4Addr>().is_ok() && bits <= 32)
        || (ip.parse::<Ipv6Addr>().is_ok() && bits <= 128)
}

fn is_uuid(s: &str, version: Option<char>) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    groups.len() == 5
        && groups
            .iter()
            .zip(lens)
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
        && version.is_none_or(|v| groups[2].starts_with(v))
}

fn is_base64(s: &str) -> bool {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).is_ok()
}

fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    matches!(parts.len(), 6 | 8 | 20)
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn is_email(s: &str) -> bool {
    match s.rsplit_once('@') {
        Some((local, domain)) => !local.is_empty() && is_hostname(domain),
        None => false,
    }
}

/// Go's `time.ParseDuration` forms (`1h30m`, `500ms`) and whole numbers of a unit
/// (`3 days`), as strfmt accepts them.
fn is_duration(s: &str) -> bool {
    let s = s.trim();
    if let Some((n, unit)) = s.split_once(' ') {
        return n.parse::<u64>().is_ok()
            && matches!(
                unit.trim_end_matches('s'),
                "n" | "ns"
                    | "u"
                    | "us"
                    | "µs"
                    | "m"
                    | "ms"
                    | "s"
                    | "sec"
                    | "second"
                    | "min"
                    | "minute"
                    | "h"
                    | "hr"
                    | "hour"
                    | "d"
                    | "day"
                    | "w"
                    | "wk"
                    | "week"
            );
    }
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    if body == "0" {
        return true;
    }
    let mut rest = body;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ns", "us", "µs", "ms", "s", "m", "h"]
            .into_iter()
            .find(|u| rest.starts_with(u));
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::is_valid;

    #[test]
    fn formats_accept_and_refuse_as_strfmt() {
        assert!(is_valid("date-time", "2024-01-02T03:04:05Z"));
        assert!(!is_valid("date-time", "yesterday"));
        assert!(is_valid("date", "2024-01-02"));
        assert!(is_valid("cidr", "10.0.0.0/8") && !is_valid("cidr", "10.0.0.0/33"));
        assert!(is_valid("uuid", "123e4567-e89b-12d3-a456-426614174000"));
        assert!(is_valid("duration", "1h30m") && is_valid("duration", "3 days"));
        assert!(!is_valid("duration", "soon"));
        assert!(is_valid("unknown-format", "anything"));
    }
}
