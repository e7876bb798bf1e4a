//! Parses the input as both formats. Whatever parses at the lenient level is
//! checked at the strict level (which must not panic), then written in both
//! formats, and what was written must parse again in the format it was
//! written in.

#![no_main]

use exposition::{parse, validate_strict, write_page, Format};
use libfuzzer_sys::fuzz_target;

const FORMATS: [Format; 2] = [Format::Text, Format::OpenMetrics];

fuzz_target!(|data: &[u8]| {
    for from in FORMATS {
        let Ok(page) = parse(data, from) else {
            continue;
        };
        let _ = validate_strict(&page, from);
        for to in FORMATS {
            let mut out = Vec::new();
            write_page(&page, from, to, &mut out);
            if let Err(error) = parse(&out, to) {
                panic!(
                    "writing a page read as {from:?} into {to:?} produced a page that does not \
                     parse: {error}\ninput:  {:?}\noutput: {:?}",
                    String::from_utf8_lossy(data),
                    String::from_utf8_lossy(&out),
                );
            }
        }
    }
});
