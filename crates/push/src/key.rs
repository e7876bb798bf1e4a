//! The grouping key: the labels that name a push group, read from the
//! request path the way Pushgateway reads it.
//!
//! `/metrics/job/<job>{/<label>/<value>}`: the job is required, label names
//! follow Prometheus's rules and may not start with `__`, and a name ending
//! in `@base64` means its value is URL-safe base64 (padding optional, `=`
//! alone for an empty value). `/metrics/job@base64/<job>` does the same for
//! the job. A label given twice keeps its last value; `job` in the labels is
//! overridden by the job. The path is percent-decoded before it is split, so
//! `%2F` separates segments as `/` does (as in Pushgateway); values with a
//! slash need base64.

use std::fmt;

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use exposition::parse::is_label_name;

/// The suffix of a path label name whose value is base64.
pub const BASE64_SUFFIX: &str = "@base64";

/// Go's `base64.RawURLEncoding` in its default (lenient) mode, after
/// trailing `=` are stripped: no padding, non-zero trailing bits allowed.
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// The labels that name a push group, sorted by name, each name once.
/// `job` is always present and not empty.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupingKey {
    labels: Box<[(Box<str>, Box<str>)]>,
}

/// Why a grouping key was refused; the message is the answer to the client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The job is missing or empty.
    #[error("job name is required")]
    MissingJob,
    /// A label name without a value.
    #[error("odd number of components in label string {0:?}")]
    OddComponents(String),
    /// Not a label name, or a reserved one.
    #[error("improper label name {0:?}")]
    LabelName(String),
    /// A value that is not base64.
    #[error("invalid base64 encoding for label {name}={value:?}: {problem}")]
    Base64 {
        /// The label (`job` for the job).
        name: String,
        /// The value as given.
        value: String,
        /// What the decoder said.
        problem: String,
    },
    /// A decoded value that is not UTF-8.
    #[error("the value of label {0:?} is not valid UTF-8")]
    Utf8(String),
}

impl GroupingKey {
    /// A key from label pairs (plain values). Later pairs win over earlier
    /// ones of the same name.
    pub fn new<N, V>(pairs: impl IntoIterator<Item = (N, V)>) -> Result<GroupingKey, KeyError>
    where
        N: AsRef<str>,
        V: AsRef<str>,
    {
        let mut labels: Vec<(Box<str>, Box<str>)> = Vec::new();
        for (name, value) in pairs {
            let (name, value) = (name.as_ref(), value.as_ref());
            check_label_name(name)?;
            match labels.iter_mut().find(|(n, _)| &**n == name) {
                Some(slot) => slot.1 = value.into(),
                None => labels.push((name.into(), value.into())),
            }
        }
        if labels.iter().all(|(n, v)| &**n != "job" || v.is_empty()) {
            return Err(KeyError::MissingJob);
        }
        labels.sort();
        Ok(GroupingKey {
            labels: labels.into_boxed_slice(),
        })
    }

    /// Reads the part of a push path after `/metrics/job/` (or after
    /// `/metrics/job@base64/` when `job_base64`), already percent-decoded:
    /// `<job>{/<label>/<value>}`.
    pub fn from_path(job_base64: bool, rest: &str) -> Result<GroupingKey, KeyError> {
        let (job, labels) = rest.split_once('/').unwrap_or((rest, ""));
        let job = if job_base64 {
            decode_base64("job", job)?
        } else {
            job.to_owned()
        };
        if job.is_empty() {
            return Err(KeyError::MissingJob);
        }
        let mut pairs: Vec<(String, String)> = Vec::new();
        if !labels.is_empty() {
            let components: Vec<&str> = labels.split('/').collect();
            if components.len() % 2 == 1 {
                return Err(KeyError::OddComponents(format!("/{labels}")));
            }
            for pair in components.chunks(2) {
                let (name, value) = (pair[0], pair[1]);
                let (plain, encoded) = match name.strip_suffix(BASE64_SUFFIX) {
                    Some(plain) => (plain, true),
                    None => (name, false),
                };
                check_label_name(plain)?;
                let value = if encoded {
                    decode_base64(plain, value)?
                } else {
                    value.to_owned()
                };
                pairs.push((plain.to_owned(), value));
            }
        }
        pairs.push(("job".to_owned(), job));
        GroupingKey::new(pairs)
    }

    /// The labels, sorted by name.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.labels.iter().map(|(n, v)| (&**n, &**v))
    }

    /// The value of label `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|(n, _)| (**n).cmp(name))
            .ok()
            .map(|i| &*self.labels[i].1)
    }

    /// The job.
    pub fn job(&self) -> &str {
        self.get("job").unwrap_or("")
    }

    /// The labels every sample of the group carries, as exposition text
    /// (`instance="",job="x"`): the grouping labels, plus `instance=""`
    /// when the key has no instance, sorted by name.
    pub fn sample_labels(&self) -> String {
        let mut out = String::new();
        let mut instance_done = self.get("instance").is_some();
        for (name, value) in self.iter() {
            if !instance_done && name > "instance" {
                push_label(&mut out, "instance", "");
                instance_done = true;
            }
            push_label(&mut out, name, value);
        }
        if !instance_done {
            push_label(&mut out, "instance", "");
        }
        out
    }

    /// The path this key is pushed to, after `/metrics`: every value in
    /// base64, so any value survives the trip.
    pub fn to_path(&self) -> String {
        let mut path = format!("/job{BASE64_SUFFIX}/{}", encode_base64(self.job()));
        for (name, value) in self.iter().filter(|(n, _)| *n != "job") {
            path.push_str(&format!("/{name}{BASE64_SUFFIX}/{}", encode_base64(value)));
        }
        path
    }
}

fn push_label(out: &mut String, name: &str, value: &str) {
    if !out.is_empty() {
        out.push(',');
    }
    out.push_str(name);
    out.push_str("=\"");
    exposition::escape_label_value(value, out);
    out.push('"');
}

impl fmt::Debug for GroupingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl fmt::Display for GroupingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (name, value)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{name}={value:?}")?;
        }
        f.write_str("}")
    }
}

fn check_label_name(name: &str) -> Result<(), KeyError> {
    if is_label_name(name) && !name.starts_with("__") {
        Ok(())
    } else {
        Err(KeyError::LabelName(name.to_owned()))
    }
}

/// Decodes a base64 path value: URL-safe alphabet, trailing `=` ignored.
fn decode_base64(name: &str, value: &str) -> Result<String, KeyError> {
    let bytes = URL_SAFE_LENIENT
        .decode(value.trim_end_matches('='))
        .map_err(|e| KeyError::Base64 {
            name: name.to_owned(),
            value: value.to_owned(),
            problem: e.to_string(),
        })?;
    String::from_utf8(bytes).map_err(|_| KeyError::Utf8(name.to_owned()))
}

/// Encodes a value for a path segment; `=` for the empty value, which an
/// empty segment could not carry.
pub fn encode_base64(value: &str) -> String {
    if value.is_empty() {
        return "=".to_owned();
    }
    URL_SAFE_LENIENT.encode(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(job_base64: bool, rest: &str) -> Result<Vec<(String, String)>, KeyError> {
        GroupingKey::from_path(job_base64, rest).map(|k| {
            k.iter()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect()
        })
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn reads_job_and_labels() {
        assert_eq!(key(false, "a"), Ok(pairs(&[("job", "a")])));
        assert_eq!(key(false, "a/"), Ok(pairs(&[("job", "a")])));
        assert_eq!(
            key(false, "a/zone/eu/instance/h1"),
            Ok(pairs(&[("instance", "h1"), ("job", "a"), ("zone", "eu")]))
        );
        // A trailing slash is an empty value, as in Pushgateway.
        assert_eq!(key(false, "a/z/"), Ok(pairs(&[("job", "a"), ("z", "")])));
        // The last value of a repeated label wins; the job always wins.
        assert_eq!(
            key(false, "a/x/1/x/2/job/b"),
            Ok(pairs(&[("job", "a"), ("x", "2")]))
        );
    }

    #[test]
    fn refuses_what_pushgateway_refuses() {
        assert_eq!(key(false, ""), Err(KeyError::MissingJob));
        assert_eq!(key(false, "/x/1"), Err(KeyError::MissingJob));
        assert_eq!(
            key(false, "a/inst"),
            Err(KeyError::OddComponents("/inst".into()))
        );
        assert_eq!(
            key(false, "a/b/c/"),
            Err(KeyError::OddComponents("/b/c/".into()))
        );
        assert_eq!(
            key(false, "a/__x/1"),
            Err(KeyError::LabelName("__x".into()))
        );
        assert_eq!(key(false, "a/1x/1"), Err(KeyError::LabelName("1x".into())));
        assert_eq!(
            key(false, "a/x@base64@base64/AA"),
            Err(KeyError::LabelName("x@base64".into()))
        );
        assert!(matches!(
            key(false, "a/w@base64/!!"),
            Err(KeyError::Base64 { ref name, .. }) if name == "w"
        ));
        assert_eq!(
            KeyError::OddComponents("/inst".into()).to_string(),
            "odd number of components in label string \"/inst\""
        );
    }

    #[test]
    fn decodes_base64_like_pushgateway() {
        // "/jobs/nightly" and "a/b", URL-safe, without padding.
        assert_eq!(
            key(true, "L2pvYnMvbmlnaHRseQ/a@base64/YS9i"),
            Ok(pairs(&[("a", "a/b"), ("job", "/jobs/nightly")]))
        );
        // Padding is optional, and `=` alone (or nothing) is the empty value.
        assert_eq!(
            key(false, "j/x@base64/YQ==/y@base64/YQ/z@base64/=/w@base64/"),
            Ok(pairs(&[
                ("job", "j"),
                ("w", ""),
                ("x", "a"),
                ("y", "a"),
                ("z", "")
            ]))
        );
        // `-` and `_` are the URL-safe digits: 0xfb 0xff is "-_8".
        assert!(matches!(
            key(false, "j/x@base64/-_8"),
            Err(KeyError::Utf8(ref n)) if n == "x"
        ));
        // "é/" in UTF-8 is c3 a9 2f: "w6kv".
        assert_eq!(
            key(false, "j/x@base64/w6kv"),
            Ok(pairs(&[("job", "j"), ("x", "é/")]))
        );
        // The standard alphabet's `+` and `/` are not URL-safe.
        assert!(key(false, "j/x@base64/w6k+").is_err());
        // An empty job, however it is spelled, is no job.
        assert_eq!(key(true, "="), Err(KeyError::MissingJob));
        assert!(matches!(key(true, "%%%"), Err(KeyError::Base64 { .. })));
    }

    #[test]
    fn renders_sample_labels_with_instance() {
        let k = GroupingKey::from_path(false, "j/b/x\"y/a/1").unwrap();
        assert_eq!(k.sample_labels(), r#"a="1",b="x\"y",instance="",job="j""#);
        let k = GroupingKey::from_path(false, "j/instance/h").unwrap();
        assert_eq!(k.sample_labels(), r#"instance="h",job="j""#);
        assert_eq!(k.job(), "j");
        assert_eq!(k.get("instance"), Some("h"));
        assert_eq!(k.get("nope"), None);
    }

    #[test]
    fn path_round_trips() {
        let k = GroupingKey::new([("job", "a/b"), ("x", ""), ("y", "é")]).unwrap();
        let path = k.to_path();
        let rest = path.strip_prefix("/job@base64/").unwrap();
        assert_eq!(GroupingKey::from_path(true, rest).unwrap(), k);
    }
}
