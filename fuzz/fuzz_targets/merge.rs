//! Merges 2 or 3 pages and checks that the merged page parses.
//!
//! Input layout: the first byte chooses, per page, the format it is read in
//! (bits 0-2) and the label set its samples get (bits 3-7, see `label_set`);
//! the rest is cut into up to 3 pages at `0xFF` bytes (never part of UTF-8
//! text). With no `0xFF`, the one page is used twice, as two exporters that
//! expose the same families. Pages that do not parse are left out.

#![no_main]

use exposition::{merge, parse, Format, LabelSet, Page, SourcePage};
use libfuzzer_sys::fuzz_target;

const SEPARATOR: u8 = 0xFF;
const FORMATS: [Format; 2] = [Format::Text, Format::OpenMetrics];
const NAMES: [&str; 3] = ["first", "second", "third"];

/// The labels page `index` gets, chosen by `choice`: plain, clashing with
/// labels pages usually carry, empty, needing escapes, or clashing with the
/// labels histograms and summaries depend on.
fn label_set(choice: u8, index: usize) -> LabelSet {
    let source = format!("source-{index}");
    let pairs: Vec<(&str, &str)> = match (choice >> (3 + index)) & 0b11 | (choice & 0x80) >> 5 {
        0 => vec![("exporter", &source)],
        1 => vec![("job", &source), ("instance", "host:9100")],
        2 => vec![],
        3 => vec![("exporter", "a\"b\\c\nd"), ("exported_job", "x")],
        4 => vec![("le", "0.5")],
        5 => vec![("quantile", "0.9"), ("exporter", &source)],
        6 => vec![("exported_instance", &source), ("instance", "")],
        _ => vec![("zone", "z\u{e9}\u{1F600}")],
    };
    LabelSet::new(pairs).expect("the label sets here are valid")
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let mut chunks: Vec<&[u8]> = rest.splitn(3, |&b| b == SEPARATOR).collect();
    if chunks.len() == 1 {
        chunks.push(chunks[0]);
    }
    let formats: Vec<Format> = (0..chunks.len())
        .map(|i| FORMATS[usize::from(control >> i & 1)])
        .collect();
    let labels: Vec<LabelSet> = (0..chunks.len()).map(|i| label_set(control, i)).collect();
    let pages: Vec<Option<Page<'_>>> = chunks
        .iter()
        .zip(&formats)
        .map(|(chunk, &format)| parse(chunk, format).ok())
        .collect();
    let sources: Vec<SourcePage<'_, '_>> = pages
        .iter()
        .enumerate()
        .filter_map(|(i, page)| {
            Some(SourcePage {
                name: NAMES[i],
                format: formats[i],
                page: page.as_ref()?,
                labels: &labels[i],
            })
        })
        .collect();
    if sources.is_empty() {
        return;
    }
    for to in FORMATS {
        let mut out = Vec::new();
        let _report = merge(&sources, to, &mut out);
        if let Err(error) = parse(&out, to) {
            panic!(
                "merging {} pages into {to:?} produced a page that does not parse: {error}\n\
                 input:  {:?}\noutput: {:?}",
                sources.len(),
                String::from_utf8_lossy(data),
                String::from_utf8_lossy(&out),
            );
        }
        if to == Format::OpenMetrics {
            assert!(
                out.ends_with(b"# EOF\n"),
                "merged OpenMetrics page does not end with # EOF: {:?}",
                String::from_utf8_lossy(&out),
            );
        }
    }
});
