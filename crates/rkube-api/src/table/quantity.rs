//! Resource quantities in upstream's canonical form (`resource.Quantity.String()`), which is
//! what its printers show: `2048Mi` prints as `2Gi`, `0.5` as `500m`, `1000` as `1k`.
//!
//! Quantities that fit in 64 bits at nano precision, which is every realistic one, are
//! canonicalized; anything else is shown as written.

/// Decimal SI suffixes by power of ten.
const DECIMAL: &[(i32, &str)] = &[
    (-9, "n"),
    (-6, "u"),
    (-3, "m"),
    (0, ""),
    (3, "k"),
    (6, "M"),
    (9, "G"),
    (12, "T"),
    (15, "P"),
    (18, "E"),
];

/// Binary SI suffixes by power of two.
const BINARY: &[(u32, &str)] = &[
    (0, ""),
    (10, "Ki"),
    (20, "Mi"),
    (30, "Gi"),
    (40, "Ti"),
    (50, "Pi"),
    (60, "Ei"),
];

/// How a quantity was written, which decides how it is written back.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    DecimalSi,
    BinarySi,
    DecimalExponent,
}

/// The quantity `written` in canonical form, or `written` itself when it cannot be parsed or
/// does not fit.
pub(super) fn canonical(written: &str) -> String {
    let trimmed = written.trim();
    parse_and_format(trimmed).unwrap_or_else(|| trimmed.to_owned())
}

/// Follows upstream's `ParseQuantity` then `String()`.
fn parse_and_format(s: &str) -> Option<String> {
    let (negative, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let number_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if fraction.contains('.') {
        return None;
    }
    let whole = whole.trim_start_matches('0');
    let whole = if whole.is_empty() { "0" } else { whole };
    let (format, exponent) = interpret(suffix)?;
    let shifted = format!("{whole}{fraction}");
    let value: i128 = shifted.parse().ok()?;
    let digits = i32::try_from(shifted.len()).ok()?;
    let fraction_len = i32::try_from(fraction.len()).ok()?;
    let sign: i128 = if negative { -1 } else { 1 };

    // Upstream's parser keeps the written text of quantities already in canonical form.
    let cached = match format {
        Format::BinarySi => {
            // Upstream's precision estimate: about 0.3 decimal digits per binary one.
            fraction.is_empty() && digits + exponent * 3 / 10 < 15 && value & 0x07 != 0
        }
        _ => {
            let scale = exponent - fraction_len;
            18 - digits >= 0
                && scale >= -9
                && scale % 3 == 0
                && !shifted.ends_with("000")
                && !shifted.starts_with('0')
        }
    };
    if cached {
        return Some(s.to_owned());
    }

    // The exact value is `mantissa × 10^scale`.
    let (mut mantissa, mut scale) = match format {
        Format::BinarySi => (
            value.checked_mul(1i128.checked_shl(u32::try_from(exponent).ok()?)?)?,
            -fraction_len,
        ),
        _ => (value, exponent - fraction_len),
    };
    mantissa = mantissa.checked_mul(sign)?;
    if scale < -9 {
        // Upstream rounds away from zero to nano precision.
        let divisor = 10i128.checked_pow((-9 - scale).unsigned_abs())?;
        let rounded = mantissa / divisor;
        mantissa = if mantissa % divisor == 0 {
            rounded
        } else {
            rounded + mantissa.signum()
        };
        scale = -9;
    }
    let mantissa = i64::try_from(mantissa).ok()?;
    if mantissa == 0 {
        return Some("0".to_owned());
    }
    if format == Format::BinarySi {
        if let Some(whole) = exact_integer(mantissa, scale)
            && (whole <= -1024 || whole >= 1024)
        {
            return Some(binary(whole));
        }
        // Small or fractional binary quantities print as decimal, to avoid rounding.
        return decimal(mantissa, scale, Format::DecimalSi);
    }
    decimal(mantissa, scale, format)
}

/// The suffix's format and exponent (power of ten, or of two for binary suffixes).
fn interpret(suffix: &str) -> Option<(Format, i32)> {
    if let Some((power, _)) = BINARY.iter().find(|(p, s)| *p > 0 && *s == suffix) {
        return Some((Format::BinarySi, i32::try_from(*power).ok()?));
    }
    if let Some((power, _)) = DECIMAL.iter().find(|(_, s)| *s == suffix) {
        return Some((Format::DecimalSi, *power));
    }
    let exponent = suffix
        .strip_prefix('e')
        .or_else(|| suffix.strip_prefix('E'))?;
    Some((Format::DecimalExponent, exponent.parse().ok()?))
}

/// `mantissa × 10^scale` as an integer, if it is one.
fn exact_integer(mantissa: i64, scale: i32) -> Option<i64> {
    if scale >= 0 {
        mantissa.checked_mul(10i64.checked_pow(scale.unsigned_abs())?)
    } else {
        let divisor = 10i64.checked_pow(scale.unsigned_abs())?;
        (mantissa % divisor == 0).then_some(mantissa / divisor)
    }
}

/// An integer in the largest power of 1024 that divides it.
fn binary(mut value: i64) -> String {
    let mut power = 0;
    while power < 60 && value != 0 && value % 1024 == 0 {
        value /= 1024;
        power += 10;
    }
    let suffix = BINARY
        .iter()
        .find(|(p, _)| *p == power)
        .map_or("", |(_, s)| *s);
    format!("{value}{suffix}")
}

/// `mantissa × 10^scale` with trailing zeros folded into an exponent that is a multiple of 3.
fn decimal(mut mantissa: i64, mut scale: i32, format: Format) -> Option<String> {
    while mantissa % 10 == 0 {
        mantissa /= 10;
        scale += 1;
    }
    match scale.rem_euclid(3) {
        1 => {
            mantissa = mantissa.checked_mul(10)?;
            scale -= 1;
        }
        2 => {
            mantissa = mantissa.checked_mul(100)?;
            scale -= 2;
        }
        _ => {}
    }
    let suffix = match format {
        Format::DecimalExponent if scale == 0 => String::new(),
        Format::DecimalExponent => format!("e{scale}"),
        _ => DECIMAL
            .iter()
            .find(|(p, _)| *p == scale)
            .map(|(_, s)| (*s).to_owned())?,
    };
    Some(format!("{mantissa}{suffix}"))
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn quantities_print_in_upstreams_canonical_form() {
        let cases = [
            ("10Gi", "10Gi"),
            ("1000Mi", "1000Mi"),
            ("2048Mi", "2Gi"),
            ("1.5Gi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("0.5Ki", "512"),
            ("0.1Ki", "102400m"),
            ("1024", "1024"),
            ("0.5", "500m"),
            ("1.2", "1200m"),
            ("-1.5", "-1500m"),
            ("1000", "1k"),
            ("1500000", "1500k"),
            ("100m", "100m"),
            ("1.0", "1"),
            ("0", "0"),
            ("0Gi", "0"),
            ("1e3", "1e3"),
            ("1.5e3", "1500"),
            ("128974848", "128974848"),
            ("12e6", "12e6"),
            ("not-a-quantity", "not-a-quantity"),
            ("0.0000000001", "1n"),
            ("1.5n", "2n"),
            ("-0", "0"),
            ("+1Gi", "+1Gi"),
            ("1E", "1E"),
        ];
        for (written, expected) in cases {
            assert_eq!(canonical(written), expected, "{written}");
        }
    }
}
