//! The labels a source adds to every sample, applied the way Prometheus
//! applies target labels with `honor_labels: false`: a label the sample
//! already has (with a non-empty value) is kept as `exported_<name>`,
//! prefixed again until the name is free.

use crate::model::{unescape, Labels};
use crate::parse::is_label_name;

/// A validated set of labels to add to every sample of a page, rendered once
/// so that adding it to a sample is one copy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSet {
    names: Vec<String>,
    /// The Bloom filter of `names`, to skip the clash check for samples
    /// that cannot have any of them.
    bloom: u32,
    /// `a="x",b="y"`, escaped, in the order given.
    rendered: String,
}

/// Why a [`LabelSet`] was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LabelSetError {
    /// Not `[a-zA-Z_][a-zA-Z0-9_]*`.
    #[error("{0:?} is not a valid label name")]
    InvalidName(String),
    /// Names starting with `__` are Prometheus's own.
    #[error("label name {0:?} is reserved (it starts with \"__\")")]
    Reserved(String),
    /// The same name twice.
    #[error("label {0:?} is given twice")]
    Duplicate(String),
}

impl LabelSet {
    /// Validates `pairs` (plain, unescaped values).
    pub fn new<N, V>(pairs: impl IntoIterator<Item = (N, V)>) -> Result<LabelSet, LabelSetError>
    where
        N: AsRef<str>,
        V: AsRef<str>,
    {
        let mut set = LabelSet::default();
        for (name, value) in pairs {
            let name = name.as_ref();
            if !is_label_name(name) {
                return Err(LabelSetError::InvalidName(name.to_owned()));
            }
            if name.starts_with("__") {
                return Err(LabelSetError::Reserved(name.to_owned()));
            }
            if set.names.iter().any(|n| n == name) {
                return Err(LabelSetError::Duplicate(name.to_owned()));
            }
            if !set.rendered.is_empty() {
                set.rendered.push(',');
            }
            set.rendered.push_str(name);
            set.rendered.push_str("=\"");
            escape_label_value(value.as_ref(), &mut set.rendered);
            set.rendered.push('"');
            set.names.push(name.to_owned());
            set.bloom |= crate::model::name_bit(name.as_bytes());
        }
        Ok(set)
    }

    /// The label names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// Whether the set adds nothing.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The labels as exposition text: `a="x",b="y"`.
    pub fn rendered(&self) -> &str {
        &self.rendered
    }

    fn contains(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// Writes `{...}` for a sample that has `labels`, with this set added.
    /// Writes nothing when both are empty.
    pub fn write_with(&self, labels: &Labels<'_>, out: &mut Vec<u8>) {
        let raw = labels.raw();
        if self.is_empty() {
            if raw.is_empty() {
                return;
            }
            if labels.is_canonical() {
                out.push(b'{');
                out.extend_from_slice(raw.as_bytes());
                out.push(b'}');
            } else {
                self.write_rewritten(labels, out);
            }
            return;
        }
        let clash = labels.may_have_any(self.bloom) && labels.iter().any(|l| self.contains(l.name));
        if clash || !labels.is_canonical() {
            self.write_rewritten(labels, out);
            return;
        }
        out.push(b'{');
        out.extend_from_slice(self.rendered.as_bytes());
        if !raw.is_empty() {
            out.push(b',');
            out.extend_from_slice(raw.as_bytes());
        }
        out.push(b'}');
    }

    /// The slow path: canonical spelling, and `exported_` for clashes.
    fn write_rewritten(&self, labels: &Labels<'_>, out: &mut Vec<u8>) {
        let own: Vec<_> = labels.iter().collect();
        let taken = |name: &str, renamed: &[String]| {
            self.contains(name)
                || renamed.iter().any(|n| n == name)
                || own.iter().any(|l| l.name == name && !l.value.is_empty())
        };
        // Prometheus renames shorter names first, so their choice is stable.
        let mut clashing: Vec<_> = own
            .iter()
            .filter(|l| self.contains(l.name) && !l.value.is_empty())
            .collect();
        clashing.sort_by_key(|l| l.name.len());
        let mut renamed: Vec<String> = Vec::with_capacity(clashing.len());
        for label in &clashing {
            let mut name = format!("exported_{}", label.name);
            while taken(&name, &renamed) {
                name.insert_str(0, "exported_");
            }
            renamed.push(name);
        }
        out.push(b'{');
        out.extend_from_slice(self.rendered.as_bytes());
        let mut first = self.is_empty();
        for label in &own {
            let name = match clashing.iter().position(|c| c.name == label.name) {
                Some(index) => renamed[index].as_str(),
                // An empty value is an absent label: the added one replaces it.
                None if self.contains(label.name) => continue,
                None => label.name,
            };
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"=\"");
            write_canonical_value(label.value, out);
            out.push(b'"');
        }
        out.push(b'}');
    }
}

/// Escapes a plain label value: `\`, `"` and newline.
pub fn escape_label_value(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str(r"\n"),
            c => out.push(c),
        }
    }
}

/// Writes an escaped label value with only the three standard escapes.
fn write_canonical_value(escaped: &str, out: &mut Vec<u8>) {
    let plain = unescape(escaped, true);
    let mut text = String::with_capacity(plain.len());
    escape_label_value(&plain, &mut text);
    out.extend_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse, Format};

    fn relabel(set: &LabelSet, line: &str) -> String {
        let page = parse(line.as_bytes(), Format::Text).unwrap();
        let mut out = Vec::new();
        set.write_with(&page.samples[0].labels, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn adds_labels_in_front() {
        let set = LabelSet::new([("exporter", "node"), ("env", "a\"b")]).unwrap();
        assert_eq!(
            relabel(&set, "m{a=\"1\"} 1\n"),
            r#"{exporter="node",env="a\"b",a="1"}"#
        );
        assert_eq!(relabel(&set, "m 1\n"), r#"{exporter="node",env="a\"b"}"#);
        assert_eq!(relabel(&LabelSet::default(), "m 1\n"), "");
    }

    #[test]
    fn keeps_clashing_labels_as_exported() {
        let set = LabelSet::new([("job", "node")]).unwrap();
        assert_eq!(
            relabel(&set, "m{job=\"x\",a=\"1\"} 1\n"),
            r#"{job="node",exported_job="x",a="1"}"#
        );
        assert_eq!(
            relabel(&set, "m{exported_job=\"y\",job=\"x\"} 1\n"),
            r#"{job="node",exported_job="y",exported_exported_job="x"}"#
        );
        // An empty value is no label at all: the added label replaces it.
        assert_eq!(
            relabel(&set, "m{job=\"\",a=\"1\"} 1\n"),
            r#"{job="node",a="1"}"#
        );
    }

    #[test]
    fn canonicalises_text_spelling() {
        let set = LabelSet::new([("exporter", "x")]).unwrap();
        assert_eq!(
            relabel(&set, "m{ a = \"1\" , b=\"\\t\", } 1\n"),
            r#"{exporter="x",a="1",b="\\t"}"#
        );
        assert_eq!(
            relabel(&LabelSet::default(), "m{a=\"1\",} 1\n"),
            r#"{a="1"}"#
        );
    }

    #[test]
    fn refuses_bad_sets() {
        assert_eq!(
            LabelSet::new([("1a", "x")]),
            Err(LabelSetError::InvalidName("1a".into()))
        );
        assert_eq!(
            LabelSet::new([("__x", "x")]),
            Err(LabelSetError::Reserved("__x".into()))
        );
        assert_eq!(
            LabelSet::new([("a", "x"), ("a", "y")]),
            Err(LabelSetError::Duplicate("a".into()))
        );
    }
}
