//! Container logs in the CRI format containerd writes (`<time> <stream> <P|F> <content>` per
//! line, P marking a partial line), read as `kubectl logs` asks: tail, since, timestamps,
//! limitBytes.

/// One parsed log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line<'a> {
    /// RFC 3339 time with nanoseconds.
    pub time: &'a str,
    /// `stdout` or `stderr`.
    pub stream: &'a str,
    /// The line ends here (`F`) or continues in the next record (`P`).
    pub full: bool,
    /// The text, without the newline.
    pub content: &'a str,
}

/// Parses the records of a CRI log file, skipping malformed ones.
pub fn parse(text: &str) -> impl Iterator<Item = Line<'_>> {
    text.lines().filter_map(|line| {
        let mut parts = line.splitn(4, ' ');
        let time = parts.next()?;
        let stream = parts.next()?;
        let tag = parts.next()?;
        let content = parts.next().unwrap_or("");
        Some(Line {
            time,
            stream,
            full: !tag.starts_with('P'),
            content,
        })
    })
}

/// What to read.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Only the last N lines.
    pub tail: Option<usize>,
    /// Only lines at or after this time (ns since the epoch).
    pub since_ns: Option<i64>,
    /// Prefix each line with its time.
    pub timestamps: bool,
    /// Stop after this many bytes.
    pub limit_bytes: Option<usize>,
}

/// The log as `kubectl logs` shows it.
pub fn render(text: &str, options: &Options) -> Vec<u8> {
    let mut lines: Vec<(String, String)> = Vec::new();
    let mut partial = String::new();
    for line in parse(text) {
        if let Some(since) = options.since_ns {
            let t = line
                .time
                .parse::<k8s_openapi::jiff::Timestamp>()
                .map(|t| t.as_nanosecond() as i64)
                .unwrap_or(0);
            if t < since {
                continue;
            }
        }
        partial.push_str(line.content);
        if line.full {
            lines.push((line.time.to_owned(), std::mem::take(&mut partial)));
        }
    }
    if !partial.is_empty() {
        lines.push((String::new(), partial));
    }
    let start = options.tail.map_or(0, |n| lines.len().saturating_sub(n));
    let mut out = Vec::new();
    for (time, content) in &lines[start..] {
        if options.timestamps {
            out.extend_from_slice(time.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(content.as_bytes());
        out.push(b'\n');
        if let Some(limit) = options.limit_bytes
            && out.len() >= limit
        {
            out.truncate(limit);
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "2026-01-01T00:00:00.000000001Z stdout F one\n\
2026-01-01T00:00:01.000000000Z stderr P tw\n\
2026-01-01T00:00:01.000000001Z stderr F o\n\
2026-01-01T00:00:02.000000000Z stdout F three\n";

    #[test]
    fn partial_records_join_and_tail_counts_lines() {
        let all = render(LOG, &Options::default());
        assert_eq!(String::from_utf8_lossy(&all), "one\ntwo\nthree\n");
        let tail = render(
            LOG,
            &Options {
                tail: Some(1),
                ..Default::default()
            },
        );
        assert_eq!(String::from_utf8_lossy(&tail), "three\n");
        let stamped = render(
            LOG,
            &Options {
                tail: Some(1),
                timestamps: true,
                ..Default::default()
            },
        );
        assert_eq!(
            String::from_utf8_lossy(&stamped),
            "2026-01-01T00:00:02.000000000Z three\n"
        );
    }

    #[test]
    fn since_and_limit_bytes_cut_the_output() {
        let since = "2026-01-01T00:00:01Z"
            .parse::<k8s_openapi::jiff::Timestamp>()
            .map(|t| t.as_nanosecond() as i64)
            .ok();
        let out = render(
            LOG,
            &Options {
                since_ns: since,
                ..Default::default()
            },
        );
        assert_eq!(String::from_utf8_lossy(&out), "two\nthree\n");
        let out = render(
            LOG,
            &Options {
                limit_bytes: Some(5),
                ..Default::default()
            },
        );
        assert_eq!(String::from_utf8_lossy(&out), "one\nt");
    }
}
