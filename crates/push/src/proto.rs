//! The protobuf exposition format: `io.prometheus.client.MetricFamily`
//! messages, each preceded by its length as a varint
//! (`application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited`).
//!
//! The messages are written out by hand from `metrics.proto` of
//! prometheus/client_model, so no build script is needed. Fields promrelay
//! does not use (exemplars, created timestamps, native histogram spans) are
//! left out; prost skips them when decoding.

use prost::Message as _;

/// The media type of a delimited protobuf push body.
pub const MEDIA_TYPE: &str = "application/vnd.google.protobuf";

/// The full `Content-Type` clients send with a delimited protobuf body.
pub const CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// A metric family.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricFamily {
    /// The family name.
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// HELP, unescaped.
    #[prost(string, optional, tag = "2")]
    pub help: Option<String>,
    /// A [`MetricType`].
    #[prost(enumeration = "MetricType", optional, tag = "3")]
    pub r#type: Option<i32>,
    /// The family's metrics.
    #[prost(message, repeated, tag = "4")]
    pub metric: Vec<Metric>,
}

/// The type of a family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MetricType {
    /// A counter.
    Counter = 0,
    /// A gauge.
    Gauge = 1,
    /// A summary.
    Summary = 2,
    /// Untyped.
    Untyped = 3,
    /// A histogram.
    Histogram = 4,
    /// A gauge histogram.
    GaugeHistogram = 5,
}

/// One metric: labels and the value of its family's type.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metric {
    /// Its labels.
    #[prost(message, repeated, tag = "1")]
    pub label: Vec<LabelPair>,
    /// Set for gauges.
    #[prost(message, optional, tag = "2")]
    pub gauge: Option<Gauge>,
    /// Set for counters.
    #[prost(message, optional, tag = "3")]
    pub counter: Option<Counter>,
    /// Set for summaries.
    #[prost(message, optional, tag = "4")]
    pub summary: Option<Summary>,
    /// Set for untyped metrics.
    #[prost(message, optional, tag = "5")]
    pub untyped: Option<Untyped>,
    /// Set for histograms.
    #[prost(message, optional, tag = "7")]
    pub histogram: Option<Histogram>,
    /// A timestamp, which pushes must not carry.
    #[prost(int64, optional, tag = "6")]
    pub timestamp_ms: Option<i64>,
}

/// A label.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPair {
    /// The name.
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// The value, unescaped.
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

impl LabelPair {
    /// Label pairs from `(name, value)`s, as a client writes them.
    pub fn list(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
        pairs
            .iter()
            .map(|(name, value)| LabelPair {
                name: Some((*name).to_owned()),
                value: Some((*value).to_owned()),
            })
            .collect()
    }
}

/// A gauge's value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Gauge {
    /// The value.
    #[prost(double, optional, tag = "1")]
    pub value: Option<f64>,
}

/// A counter's value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Counter {
    /// The value.
    #[prost(double, optional, tag = "1")]
    pub value: Option<f64>,
}

/// An untyped value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Untyped {
    /// The value.
    #[prost(double, optional, tag = "1")]
    pub value: Option<f64>,
}

/// One quantile of a summary.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Quantile {
    /// The quantile, 0 to 1.
    #[prost(double, optional, tag = "1")]
    pub quantile: Option<f64>,
    /// Its value.
    #[prost(double, optional, tag = "2")]
    pub value: Option<f64>,
}

/// A summary.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// `_count`.
    #[prost(uint64, optional, tag = "1")]
    pub sample_count: Option<u64>,
    /// `_sum`.
    #[prost(double, optional, tag = "2")]
    pub sample_sum: Option<f64>,
    /// The quantiles.
    #[prost(message, repeated, tag = "3")]
    pub quantile: Vec<Quantile>,
}

/// A classic histogram.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    /// `_count`.
    #[prost(uint64, optional, tag = "1")]
    pub sample_count: Option<u64>,
    /// `_count` of a float histogram; wins over `sample_count` when set.
    #[prost(double, optional, tag = "4")]
    pub sample_count_float: Option<f64>,
    /// `_sum`.
    #[prost(double, optional, tag = "2")]
    pub sample_sum: Option<f64>,
    /// The buckets, in increasing order of upper bound.
    #[prost(message, repeated, tag = "3")]
    pub bucket: Vec<Bucket>,
}

/// One cumulative bucket.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Bucket {
    /// The count of observations up to `upper_bound`.
    #[prost(uint64, optional, tag = "1")]
    pub cumulative_count: Option<u64>,
    /// The same for a float histogram; wins when set.
    #[prost(double, optional, tag = "4")]
    pub cumulative_count_float: Option<f64>,
    /// The bucket's `le`.
    #[prost(double, optional, tag = "2")]
    pub upper_bound: Option<f64>,
}

/// Why a delimited body could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// The length prefix is not a varint.
    #[error("message {index}: invalid length prefix")]
    Length {
        /// 0-based message index.
        index: usize,
    },
    /// The body ends inside a message.
    #[error("message {index}: {length} bytes announced, {left} left in the body")]
    Truncated {
        /// 0-based message index.
        index: usize,
        /// The announced length.
        length: u64,
        /// What was left.
        left: usize,
    },
    /// The message does not decode.
    #[error("message {index}: {problem}")]
    Decode {
        /// 0-based message index.
        index: usize,
        /// prost's description.
        problem: String,
    },
}

/// Reads every length-delimited `MetricFamily` of `body`. A length is never
/// trusted beyond the bytes that are there.
pub fn read_delimited(mut body: &[u8]) -> Result<Vec<MetricFamily>, ProtoError> {
    let mut families = Vec::new();
    while !body.is_empty() {
        let index = families.len();
        let length =
            prost::encoding::decode_varint(&mut body).map_err(|_| ProtoError::Length { index })?;
        let left = body.len();
        let size =
            usize::try_from(length)
                .ok()
                .filter(|&n| n <= left)
                .ok_or(ProtoError::Truncated {
                    index,
                    length,
                    left,
                })?;
        let (message, rest) = body.split_at(size);
        let family = MetricFamily::decode(message).map_err(|e| ProtoError::Decode {
            index,
            problem: e.to_string(),
        })?;
        families.push(family);
        body = rest;
    }
    Ok(families)
}

/// Writes `families` length-delimited, as a client pushes them.
pub fn write_delimited(families: &[MetricFamily]) -> Vec<u8> {
    let mut out = Vec::new();
    for family in families {
        // Writing to a Vec cannot run out of space.
        let _ = family.encode_length_delimited(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauge(name: &str, value: f64) -> MetricFamily {
        MetricFamily {
            name: Some(name.to_owned()),
            help: None,
            r#type: Some(MetricType::Gauge as i32),
            metric: vec![Metric {
                gauge: Some(Gauge { value: Some(value) }),
                ..Metric::default()
            }],
        }
    }

    #[test]
    fn round_trips_delimited_messages() {
        let families = vec![gauge("a", 1.0), gauge("b", 2.5)];
        let body = write_delimited(&families);
        assert_eq!(read_delimited(&body), Ok(families));
        assert_eq!(read_delimited(&[]), Ok(Vec::new()));
    }

    #[test]
    fn refuses_truncated_and_garbled_bodies() {
        let body = write_delimited(&[gauge("a", 1.0), gauge("b", 2.0)]);
        for cut in 1..body.len() {
            let result = read_delimited(&body[..cut]);
            // A cut right after the first message is a valid shorter body.
            if cut == body.len() / 2 {
                continue;
            }
            assert!(result.is_err(), "cut at {cut} read as {result:?}");
        }
        // A length far beyond the body is refused without allocating it.
        let huge = [0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2];
        assert!(matches!(
            read_delimited(&huge),
            Err(ProtoError::Truncated { index: 0, .. })
        ));
        assert_eq!(
            read_delimited(&[0xff]),
            Err(ProtoError::Length { index: 0 })
        );
        assert!(matches!(
            read_delimited(&[2, 0xff, 0xff]),
            Err(ProtoError::Decode { index: 0, .. })
        ));
    }
}
