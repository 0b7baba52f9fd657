//! Label and field selectors, as the API server parses, validates and matches them.
//!
//! [`LabelSelector`] takes the string form of `?labelSelector=` and `kubectl -l`, or a
//! `metav1.LabelSelector` from an object's spec. [`FieldSelector`] takes `?fieldSelector=` and
//! knows, per kind, which field labels the API accepts and where each one lives in an object.
//! Upstream's parsers, error messages and per-kind tables are the specification; where upstream
//! behaves oddly the odd behaviour is kept and the code says so.

mod field;
mod kinds;
mod label;

pub use field::{FieldOperator, FieldSelector, FieldTerm};
pub use label::{LabelOperator, LabelRequirement, LabelSelector};

/// A string quoted as Go's `%q` quotes it, which upstream messages use for keys and values.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                let n = c as u32;
                if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Upstream's aggregate of errors: one message alone, several in brackets, duplicates once.
fn aggregate(errors: Vec<String>) -> String {
    let mut unique: Vec<String> = Vec::with_capacity(errors.len());
    for e in errors {
        if !unique.contains(&e) {
            unique.push(e);
        }
    }
    match unique.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quoting_escapes_quotes_backslashes_and_controls() {
        let cases = [
            ("abc", "\"abc\""),
            ("a\"b", "\"a\\\"b\""),
            ("a\\b", "\"a\\\\b\""),
            ("tab\there", "\"tab\\there\""),
            ("\u{1}", "\"\\x01\""),
            ("héllo", "\"héllo\""),
        ];
        for (input, want) in cases {
            assert_eq!(go_quote(input), want, "{input:?}");
        }
    }

    /// Every string up to four characters long over the characters that matter to the parsers.
    fn short_strings() -> Vec<String> {
        const ALPHABET: [char; 15] = [
            'a', '=', '!', '(', ')', ',', '<', '>', ' ', '\\', 'i', 'n', '\0', 'é', '-',
        ];
        let mut all = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..4 {
            let next: Vec<String> = last
                .iter()
                .flat_map(|s| ALPHABET.iter().map(move |c| format!("{s}{c}")))
                .collect();
            all.extend(next.iter().cloned());
            last = next;
        }
        all
    }

    #[test]
    fn no_short_input_panics_and_canonical_strings_parse_to_themselves() {
        for input in short_strings() {
            if let Ok(selector) = LabelSelector::parse(&input) {
                let canonical = selector.to_string();
                let again = LabelSelector::parse(&canonical)
                    .unwrap_or_else(|e| panic!("{input:?} -> {canonical:?}: {e}"));
                assert_eq!(again, selector, "{input:?} -> {canonical:?}");
            }
            if let Ok(selector) = FieldSelector::parse(&input) {
                let canonical = selector.to_string();
                let again = FieldSelector::parse(&canonical)
                    .unwrap_or_else(|e| panic!("{input:?} -> {canonical:?}: {e}"));
                assert_eq!(again.to_string(), canonical, "{input:?}");
                let _ = selector.check_supported("", "Pod");
                let _ = selector.matches("", "Pod", &serde_json::Value::Null);
            }
        }
    }

    #[test]
    fn an_aggregate_of_one_error_is_that_error_and_of_several_is_bracketed() {
        assert_eq!(aggregate(vec!["a".into()]), "a");
        assert_eq!(
            aggregate(vec!["a".into(), "b".into(), "a".into()]),
            "[a, b]"
        );
    }
}
