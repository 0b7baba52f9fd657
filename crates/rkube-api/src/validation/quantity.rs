//! Resource quantities (`500m`, `1Gi`, `2e3`) as far as validation needs them: their value,
//! to compare requests with limits and to refuse negative amounts.

/// Binary and decimal SI suffixes and their factors.
const SUFFIXES: &[(&str, f64)] = &[
    ("Ki", 1024.0),
    ("Mi", 1_048_576.0),
    ("Gi", 1_073_741_824.0),
    ("Ti", 1_099_511_627_776.0),
    ("Pi", 1_125_899_906_842_624.0),
    ("Ei", 1_152_921_504_606_846_976.0),
    ("n", 1e-9),
    ("u", 1e-6),
    ("m", 1e-3),
    ("", 1.0),
    ("k", 1e3),
    ("M", 1e6),
    ("G", 1e9),
    ("T", 1e12),
    ("P", 1e15),
    ("E", 1e18),
];

/// The value of a quantity, or `None` if it is not one.
pub(super) fn parse(text: &str) -> Option<f64> {
    let split = text
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || (*i == 0 && (*c == '+' || *c == '-'))))
        .map_or(text.len(), |(i, _)| i);
    let (number, suffix) = text.split_at(split);
    let digits = number.trim_start_matches(['+', '-']);
    if digits.is_empty() || digits == "." || digits.matches('.').count() > 1 {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let factor = match SUFFIXES.iter().find(|(s, _)| *s == suffix) {
        Some((_, factor)) => *factor,
        None => {
            let exponent = suffix.strip_prefix(['e', 'E'])?;
            let exponent: i32 = exponent.parse().ok()?;
            10f64.powi(exponent)
        }
    };
    Some(value * factor)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn quantities_parse_to_their_value() {
        let cases = [
            ("1", Some(1.0)),
            ("500m", Some(0.5)),
            ("1Gi", Some(1_073_741_824.0)),
            ("1.5k", Some(1500.0)),
            ("2e3", Some(2000.0)),
            ("-1", Some(-1.0)),
            ("", None),
            ("lots", None),
            ("1Gb", None),
        ];
        for (text, value) in cases {
            assert_eq!(parse(text), value, "{text}");
        }
    }
}
