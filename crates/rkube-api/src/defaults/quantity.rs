//! Resource quantities as upstream stores them: resource lists rounded up to thousandths
//! (`SetDefaults_ResourceList`), and every quantity written in its canonical form
//! (`resource.Quantity`'s serialisation), so that `cpu: 0.5` is stored as `500m` and
//! `memory: 1024Mi` as `1Gi`.

use serde_json::{Map, Value};

/// How a quantity was written, which decides how it is written back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// `Ki`, `Mi`, … (powers of 1024).
    BinarySi,
    /// `m`, `k`, `M`, … or no suffix (powers of 1000).
    DecimalSi,
    /// `e3`, `E-2` (powers of ten).
    DecimalExponent,
}

/// A quantity: `mantissa × 10^exponent`, exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Quantity {
    mantissa: i128,
    exponent: i32,
    format: Format,
}

const BINARY: &[&str] = &["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
const DECIMAL: &[(&str, i32)] = &[
    ("n", -9),
    ("u", -6),
    ("m", -3),
    ("", 0),
    ("k", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    ("E", 18),
];

fn parse(text: &str) -> Option<Quantity> {
    let split = text
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || (*i == 0 && matches!(c, '+' | '-'))))
        .map_or(text.len(), |(i, _)| i);
    let (number, suffix) = text.split_at(split);
    let negative = number.starts_with('-');
    let digits = number.trim_start_matches(['+', '-']);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return None;
    }
    let mut mantissa: i128 = 0;
    for c in whole.chars().chain(fraction.chars()) {
        let d = i128::from(c.to_digit(10)?);
        mantissa = mantissa.checked_mul(10)?.checked_add(d)?;
    }
    if negative {
        mantissa = -mantissa;
    }
    let mut exponent = -i32::try_from(fraction.len()).ok()?;
    let format = if let Some(power) = BINARY.iter().position(|s| !s.is_empty() && *s == suffix) {
        for _ in 0..power {
            mantissa = mantissa.checked_mul(1024)?;
        }
        Format::BinarySi
    } else if let Some((_, e)) = DECIMAL.iter().find(|(s, _)| *s == suffix) {
        exponent += e;
        Format::DecimalSi
    } else {
        let e: i32 = suffix.strip_prefix(['e', 'E'])?.parse().ok()?;
        exponent = exponent.checked_add(e)?;
        Format::DecimalExponent
    };
    Some(Quantity {
        mantissa,
        exponent,
        format,
    })
}

impl Quantity {
    /// Rounds up (away from zero, as upstream's `RoundUp`) to `scale` decimal places
    /// below the unit, e.g. -3 for thousandths.
    fn round_up(mut self, scale: i32) -> Self {
        let sign = self.mantissa.signum();
        let mut inexact = false;
        while self.exponent < scale {
            if self.mantissa == 0 {
                // Nothing left to shift out: skip the rest of a huge negative exponent.
                self.exponent = scale;
                break;
            }
            inexact |= self.mantissa % 10 != 0;
            self.mantissa /= 10;
            self.exponent += 1;
        }
        if inexact {
            self.mantissa += sign;
        }
        self
    }

    /// The value as an integer, if it is one.
    fn integer(self) -> Option<i128> {
        if self.exponent >= 0 {
            (0..self.exponent).try_fold(self.mantissa, |m, _| m.checked_mul(10))
        } else {
            let divisor = (0..-self.exponent).try_fold(1i128, |d, _| d.checked_mul(10))?;
            (self.mantissa % divisor == 0).then(|| self.mantissa / divisor)
        }
    }

    /// Upstream's canonical text.
    fn canonical(self) -> String {
        if self.format == Format::BinarySi
            && let Some(mut value) = self.integer().filter(|v| v.abs() >= 1024)
        {
            let mut power = 0;
            while power + 1 < BINARY.len() && value % 1024 == 0 {
                value /= 1024;
                power += 1;
            }
            return format!("{value}{}", BINARY[power]);
        }
        let (mut mantissa, mut exponent) = (self.mantissa, self.exponent);
        if mantissa == 0 {
            return "0".to_owned();
        }
        while mantissa % 10 == 0 {
            mantissa /= 10;
            exponent = exponent.saturating_add(1);
        }
        while exponent.rem_euclid(3) != 0 {
            let Some(scaled) = mantissa.checked_mul(10) else {
                return format!("{mantissa}e{exponent}");
            };
            mantissa = scaled;
            exponent -= 1;
        }
        let suffix = match self.format {
            Format::DecimalExponent if exponent == 0 => String::new(),
            Format::DecimalExponent => format!("e{exponent}"),
            _ => DECIMAL
                .iter()
                .find(|(_, e)| *e == exponent)
                .map_or_else(|| format!("e{exponent}"), |(s, _)| (*s).to_owned()),
        };
        format!("{mantissa}{suffix}")
    }
}

/// The value of a quantity, for comparisons (the QoS class).
pub(super) fn value(text: &str) -> Option<f64> {
    let q = parse(text)?;
    // Precision beyond f64 does not matter for comparing requests with limits.
    let mantissa = q.mantissa as f64;
    Some(mantissa * 10f64.powi(q.exponent))
}

/// A quantity in canonical form; text that is not a quantity is returned as it is.
pub(super) fn canonical(text: &str) -> String {
    parse(text).map_or_else(|| text.to_owned(), Quantity::canonical)
}

/// A resource list's quantity: rounded up to thousandths, then canonical.
pub(super) fn resource(text: &str) -> String {
    parse(text).map_or_else(|| text.to_owned(), |q| q.round_up(-3).canonical())
}

/// Rounds and canonicalises every quantity of the resource list at `key`.
pub(super) fn resource_list(map: &mut Map<String, Value>, key: &str) {
    if let Some(list) = map.get_mut(key).and_then(Value::as_object_mut) {
        for value in list.values_mut() {
            if let Some(text) = value.as_str() {
                *value = Value::String(resource(text));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{canonical, resource};

    #[test]
    fn quantities_are_written_back_as_upstream_writes_them() {
        let cases = [
            ("0.5", "500m"),
            ("1000m", "1"),
            ("1500m", "1500m"),
            ("1.5k", "1500"),
            ("2e3", "2e3"),
            ("12e2", "1200"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("0.5Ki", "512"),
            ("1.5Ki", "1536"),
            ("100Mi", "100Mi"),
            ("1G", "1G"),
            ("0", "0"),
            ("not-a-quantity", "not-a-quantity"),
        ];
        for (text, stored) in cases {
            assert_eq!(canonical(text), stored, "{text}");
        }
    }

    #[test]
    fn resource_lists_round_up_to_thousandths() {
        assert_eq!(resource("0.0001"), "1m");
        assert_eq!(resource("1e-2000000000"), "1e-3");
        assert_eq!(resource("-0.0001"), "-1m");
        assert!(!canonical("10e2147483647").is_empty());
        assert_eq!(resource("1.0005"), "1001m");
        assert_eq!(resource("250m"), "250m");
    }
}
