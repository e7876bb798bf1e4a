//! The two text formats promrelay reads and writes, and how a scraper asks
//! for one.
//!
//! Prometheus text format 0.0.4:
//! <https://prometheus.io/docs/instrumenting/exposition_formats/>.
//! OpenMetrics 1.0 text:
//! <https://github.com/OpenObservability/OpenMetrics/blob/main/specification/OpenMetrics.md>.

/// A wire format for an exposition page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0 text format.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` a page in this format is served with.
    pub const fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// The format a `Content-Type` header announces. Anything that is not
    /// OpenMetrics is read as text 0.0.4, as Prometheus does.
    pub fn from_content_type(value: &str) -> Format {
        let media = value.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    /// The format to answer with for an `Accept` header: OpenMetrics when the
    /// client lists it with a higher (or equal, earlier) quality than text,
    /// text otherwise. Prometheus sends
    /// `application/openmetrics-text;version=1.0.0,...;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1`.
    pub fn negotiate(accept: &str) -> Format {
        let mut best: Option<(f32, Format)> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim();
            let format = if media.eq_ignore_ascii_case("application/openmetrics-text") {
                Format::OpenMetrics
            } else if media.eq_ignore_ascii_case("text/plain") {
                Format::Text
            } else {
                continue;
            };
            let mut quality = 1.0_f32;
            for param in parts {
                if let Some((key, value)) = param.split_once('=') {
                    if key.trim().eq_ignore_ascii_case("q") {
                        quality = value.trim().parse().unwrap_or(0.0);
                    }
                }
            }
            if quality > 0.0 && best.is_none_or(|(q, _)| quality > q) {
                best = Some((quality, format));
            }
        }
        best.map_or(Format::Text, |(_, format)| format)
    }

    /// Guesses the format of a page from its last line: only OpenMetrics ends
    /// with `# EOF`.
    pub fn sniff(page: &[u8]) -> Format {
        let trimmed = page.strip_suffix(b"\n").unwrap_or(page);
        if trimmed.ends_with(b"# EOF") {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_like_prometheus() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(prometheus), Format::OpenMetrics);
        assert_eq!(
            Format::negotiate("text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5"),
            Format::Text
        );
        assert_eq!(Format::negotiate("*/*"), Format::Text);
        assert_eq!(Format::negotiate(""), Format::Text);
        assert_eq!(
            Format::negotiate("application/openmetrics-text;q=0"),
            Format::Text
        );
    }

    #[test]
    fn reads_content_types() {
        assert_eq!(
            Format::from_content_type("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::from_content_type("text/plain; version=0.0.4"),
            Format::Text
        );
        assert_eq!(
            Format::from_content_type(Format::OpenMetrics.content_type()),
            Format::OpenMetrics
        );
    }

    #[test]
    fn sniffs_eof() {
        assert_eq!(Format::sniff(b"a 1\n# EOF\n"), Format::OpenMetrics);
        assert_eq!(Format::sniff(b"a 1\n# EOF"), Format::OpenMetrics);
        assert_eq!(Format::sniff(b"a 1\n"), Format::Text);
    }
}
