//! The name rules Kubernetes applies everywhere: DNS-1123 labels and subdomains, qualified
//! names (label and annotation keys) and label values. Each check returns the problems found,
//! worded as upstream words them (empty: the value is fine).

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;
const QUALIFIED_NAME_MAX: usize = 63;
const LABEL_VALUE_MAX: usize = 63;

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";

fn too_long(max: usize) -> String {
    format!("must be no more than {max} characters")
}

/// Upstream's regex error: the rule, examples, and the regex.
fn regex_error(rule: &str, regex: &str, examples: &[&str]) -> String {
    let examples: Vec<String> = examples.iter().map(|e| format!("'{e}'")).collect();
    format!(
        "{rule} (e.g. {}, regex used for validation is '{regex}')",
        examples.join(",  or ")
    )
}

fn lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// Lowercase alphanumerics and '-', starting and ending alphanumeric.
fn matches_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| lower_alnum(c) || c == '-')
        && s.starts_with(lower_alnum)
        && s.ends_with(lower_alnum)
}

/// Alphanumerics, '-', '_' and '.', starting and ending alphanumeric.
fn matches_qualified_part(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    !s.is_empty()
        && s.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

/// A DNS-1123 label: what namespace and service names must be.
pub fn is_dns1123_label(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > DNS1123_LABEL_MAX {
        errors.push(too_long(DNS1123_LABEL_MAX));
    }
    if !matches_dns1123_label(value) {
        errors.push(regex_error(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
             and must start and end with an alphanumeric character",
            DNS1123_LABEL_FMT,
            &["my-name", "123-abc"],
        ));
    }
    errors
}

/// A DNS-1123 subdomain: what most object names must be.
pub fn is_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX {
        errors.push(too_long(DNS1123_SUBDOMAIN_MAX));
    }
    if !value.split('.').all(matches_dns1123_label) {
        errors.push(regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' \
             or '.', and must start and end with an alphanumeric character",
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errors
}

/// A qualified name, `[prefix/]name`: what label and annotation keys must be.
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errors.push("prefix part must be non-empty".to_owned());
            } else {
                errors.extend(
                    is_dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|e| format!("prefix part {e}")),
                );
            }
            *name
        }
        _ => {
            errors.push(regex_error(
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must \
                 start and end with an alphanumeric character",
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"],
            ) + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')");
            return errors;
        }
    };
    if name.is_empty() {
        errors.push("name part must be non-empty".to_owned());
    } else if name.len() > QUALIFIED_NAME_MAX {
        errors.push(format!("name part {}", too_long(QUALIFIED_NAME_MAX)));
    }
    if !name.is_empty() && !matches_qualified_part(name) {
        errors.push(regex_error(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and \
             end with an alphanumeric character",
            QUALIFIED_NAME_FMT,
            &["MyName", "my.name", "123-abc"],
        ));
    }
    errors
}

/// A label value: empty, or up to 63 alphanumerics, '-', '_' and '.', starting and ending
/// alphanumeric.
pub fn is_valid_label_value(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > LABEL_VALUE_MAX {
        errors.push(too_long(LABEL_VALUE_MAX));
    }
    if !value.is_empty() && !matches_qualified_part(value) {
        errors.push(regex_error(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' \
             or '.', and must start and end with an alphanumeric character",
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errors
}

const DNS1035_LABEL_MAX: usize = 63;

/// `IsDNS1035Label`: a DNS-1123 label that starts with a letter.
pub fn is_dns1035_label(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > DNS1035_LABEL_MAX {
        errors.push(format!(
            "must be no more than {DNS1035_LABEL_MAX} characters"
        ));
    }
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok = value.starts_with(|c: char| c.is_ascii_lowercase())
        && value.ends_with(alnum)
        && value.chars().all(|c| alnum(c) || c == '-');
    if !ok {
        errors.push(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start \
             with an alphabetic character, and end with an alphanumeric character (e.g. \
             'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
                .to_owned(),
        );
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1123_labels_and_subdomains() {
        assert!(is_dns1123_label("web-1").is_empty());
        assert!(!is_dns1123_label("Web").is_empty());
        assert!(!is_dns1123_label("-web").is_empty());
        assert!(!is_dns1123_label("a.b").is_empty());
        assert_eq!(is_dns1123_label(&"a".repeat(64)), vec![too_long(63)]);
        assert!(is_dns1123_subdomain("kube-root-ca.crt").is_empty());
        assert!(!is_dns1123_subdomain("a..b").is_empty());
        assert!(!is_dns1123_subdomain("").is_empty());
        assert!(is_dns1123_subdomain("Web")[0].starts_with("a lowercase RFC 1123 subdomain"));
    }

    #[test]
    fn qualified_names_with_and_without_prefix() {
        assert!(is_qualified_name("app").is_empty());
        assert!(is_qualified_name("app.kubernetes.io/name").is_empty());
        assert!(is_qualified_name("My_Key.1").is_empty());
        assert!(!is_qualified_name("a/b/c").is_empty());
        assert!(!is_qualified_name("/name").is_empty());
        assert!(!is_qualified_name("Example.com/name")[0].is_empty());
        assert!(!is_qualified_name("-bad").is_empty());
        assert!(!is_qualified_name("").is_empty());
    }

    #[test]
    fn label_values_may_be_empty() {
        assert!(is_valid_label_value("").is_empty());
        assert!(is_valid_label_value("v1.2_x-y").is_empty());
        assert!(!is_valid_label_value("bad value").is_empty());
        assert!(!is_valid_label_value(&"x".repeat(64)).is_empty());
    }
}
