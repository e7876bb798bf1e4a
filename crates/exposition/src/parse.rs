//! Bytes to [`Page`], at the lenient level: what Prometheus's own scraper
//! accepts.
//!
//! Text 0.0.4 allows blank lines, free comments, whitespace between tokens and
//! a trailing comma in label sets, as Prometheus's `promparser` does.
//! OpenMetrics is read as its ABNF writes it: single spaces, only
//! `HELP`/`TYPE`/`UNIT` comments, exemplars, and a final `# EOF`.
//!
//! Lines are grouped into families as they come: a sample joins the current
//! family when its name is the family name plus a suffix the family's type
//! allows, and starts a new untyped family otherwise. Rules about the whole
//! page (each family once, metadata first, bucket order, ...) belong to the
//! strict level in [`crate::validate`].
//!
//! The parser works on byte slices of the input and allocates once per
//! family (its sample vector); nothing is allocated per sample.

use std::fmt;

use memchr::memchr;

use crate::format::Format;
use crate::model::{Family, Labels, MetricType, Page, Sample};
use crate::value;

/// Why a page could not be read, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {kind}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
    /// What is wrong.
    pub kind: ParseErrorKind,
}

/// What is wrong with a line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    /// Bytes that are not UTF-8.
    #[error("the page is not valid UTF-8")]
    InvalidUtf8,
    /// A metric name was expected.
    #[error("expected a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)")]
    MetricName,
    /// A label name was expected.
    #[error("expected a label name ([a-zA-Z_][a-zA-Z0-9_]*)")]
    LabelName,
    /// A specific character was expected.
    #[error("expected {expected}, found {found}")]
    Expected {
        /// What should have been there.
        expected: &'static str,
        /// What was there.
        found: Found,
    },
    /// A label value's closing quote is missing.
    #[error("the label value has no closing quote")]
    UnterminatedValue,
    /// The same label name twice in one sample.
    #[error("label {0:?} appears twice in the same sample")]
    DuplicateLabel(String),
    /// Not a number.
    #[error("{0:?} is not a valid sample value")]
    Value(String),
    /// Not a timestamp.
    #[error("{0:?} is not a valid timestamp ({1})")]
    Timestamp(String, &'static str),
    /// A `# TYPE` word that the format does not know.
    #[error("unknown metric type {0:?}")]
    UnknownType(String),
    /// An OpenMetrics comment line other than HELP, TYPE, UNIT or EOF.
    #[error("OpenMetrics allows only # HELP, # TYPE, # UNIT and # EOF comment lines")]
    Comment,
    /// `# UNIT` in the text format.
    #[error("# UNIT exists only in OpenMetrics")]
    UnitInText,
    /// An empty line in OpenMetrics.
    #[error("OpenMetrics does not allow empty lines")]
    EmptyLine,
    /// An OpenMetrics page without `# EOF`.
    #[error("the page does not end with # EOF")]
    MissingEof,
    /// Anything after `# EOF`.
    #[error("nothing may follow # EOF")]
    AfterEof,
    /// An exemplar that does not parse.
    #[error("invalid exemplar: {0}")]
    Exemplar(&'static str),
    /// An exemplar in the text format.
    #[error("exemplars exist only in OpenMetrics")]
    ExemplarInText,
    /// More than a line can hold.
    #[error("too many labels in one sample (at most {0})")]
    TooManyLabels(usize),
}

/// The text of what was found where something else was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found(Option<char>);

impl Found {
    /// The end of the line.
    pub const fn end() -> Found {
        Found(None)
    }

    /// A character.
    pub const fn char(c: char) -> Found {
        Found(Some(c))
    }
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("the end of the line"),
            Some(' ') => f.write_str("a space"),
            Some('\t') => f.write_str("a tab"),
            Some(c) => write!(f, "{c:?}"),
        }
    }
}

/// The most labels one sample may carry, so one line cannot make the
/// duplicate check or a relabel arbitrarily long.
pub const MAX_LABELS: usize = 64;

/// Parses a page in `format` at the lenient level.
pub fn parse(input: &[u8], format: Format) -> Result<Page<'_>, ParseError> {
    let text = std::str::from_utf8(input).map_err(|e| utf8_error(input, e.valid_up_to()))?;
    match format {
        Format::Text => Parser::<false>::new(text).run(),
        Format::OpenMetrics => Parser::<true>::new(text).run(),
    }
}

fn utf8_error(input: &[u8], valid_up_to: usize) -> ParseError {
    let before = &input[..valid_up_to];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = memchr::memrchr(b'\n', before).map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    ParseError {
        line: clamp(line),
        column: clamp(column),
        kind: ParseErrorKind::InvalidUtf8,
    }
}

fn clamp(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A failure inside a line: the byte offset in the line and the reason.
type LineError = (usize, ParseErrorKind);

struct Parser<'a, const OM: bool> {
    text: &'a str,
    families: Vec<Family<'a>>,
    samples: Vec<Sample<'a>>,
}

impl<'a, const OM: bool> Parser<'a, OM> {
    const FORMAT: Format = if OM {
        Format::OpenMetrics
    } else {
        Format::Text
    };

    fn new(text: &'a str) -> Self {
        // Sample lines are rarely shorter than 40 bytes: reserving for that
        // many avoids regrowing (and copying) the vector on large pages;
        // pages the estimate misses only grow as usual.
        Parser {
            text,
            families: Vec::with_capacity(text.len() / 256 + 4),
            samples: Vec::with_capacity(text.len() / 40 + 4),
        }
    }

    fn run(mut self) -> Result<Page<'a>, ParseError> {
        let text = self.text;
        let bytes = text.as_bytes();
        let mut start = 0;
        let mut number: u32 = 0;
        let mut eof = false;
        while start < bytes.len() {
            number += 1;
            let end = memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i);
            let line = &text[start..end];
            if eof {
                return Err(located(line, number, (0, ParseErrorKind::AfterEof)));
            }
            match self.line(line, number) {
                Ok(Line::Eof) => eof = true,
                Ok(Line::Other) => {}
                Err(e) => return Err(located(line, number, e)),
            }
            start = end + 1;
        }
        if OM && !eof {
            let last = bytes.ends_with(b"\n");
            return Err(ParseError {
                line: number + u32::from(last || number == 0),
                column: 1,
                kind: ParseErrorKind::MissingEof,
            });
        }
        Ok(Page {
            families: self.families,
            samples: self.samples,
        })
    }

    fn line(&mut self, line: &'a str, number: u32) -> Result<Line, LineError> {
        let bytes = line.as_bytes();
        let first = if OM { 0 } else { skip_blank(bytes, 0) };
        match bytes.get(first) {
            None if OM => Err((0, ParseErrorKind::EmptyLine)),
            None => Ok(Line::Other),
            Some(b'#') => self.comment(line, first + 1, number),
            Some(_) => {
                let sample = self.sample(line, first, number)?;
                self.add_sample(sample);
                Ok(Line::Other)
            }
        }
    }

    fn comment(&mut self, line: &'a str, at: usize, number: u32) -> Result<Line, LineError> {
        let bytes = line.as_bytes();
        let keyword_start = if OM {
            if bytes.get(at) != Some(&b' ') {
                return Err((at, ParseErrorKind::Comment));
            }
            at + 1
        } else {
            skip_blank(bytes, at)
        };
        let keyword_end = word_end(bytes, keyword_start);
        let keyword = &line[keyword_start..keyword_end];
        let meta = match keyword {
            "HELP" => Meta::Help,
            "TYPE" => Meta::Type,
            "UNIT" if OM => Meta::Unit,
            "EOF" if OM => {
                return if keyword_end == bytes.len() {
                    Ok(Line::Eof)
                } else {
                    Err((keyword_end, ParseErrorKind::AfterEof))
                };
            }
            _ if OM => return Err((keyword_start, ParseErrorKind::Comment)),
            // Any other comment is free text in the text format.
            _ => return Ok(Line::Other),
        };
        let name_start = separator::<OM>(bytes, keyword_end)?;
        let name_end =
            metric_name_end(bytes, name_start).ok_or((name_start, ParseErrorKind::MetricName))?;
        let name = &line[name_start..name_end];
        // The rest of the line after one separator; HELP and UNIT may be empty.
        let rest_start = match bytes.get(name_end) {
            None => name_end,
            Some(b' ') if OM => name_end + 1,
            Some(b' ' | b'\t') if !OM => skip_blank(bytes, name_end),
            Some(_) => {
                return Err((
                    name_end,
                    expected("a space after the metric name", bytes, name_end),
                ))
            }
        };
        let rest = &line[rest_start..];
        let family = self.family_for_meta(name, meta, number);
        match meta {
            Meta::Help => {
                family.help = Some(rest);
                family.lines.help = number;
            }
            Meta::Unit => {
                family.unit = Some(rest);
                family.lines.unit = number;
            }
            Meta::Type => {
                let word = if OM {
                    rest
                } else {
                    rest.trim_end_matches([' ', '\t'])
                };
                family.kind = MetricType::from_word(word, Self::FORMAT)
                    .ok_or_else(|| (rest_start, ParseErrorKind::UnknownType(word.to_owned())))?;
                family.lines.kind = number;
            }
        }
        Ok(Line::Other)
    }

    /// The family a metadata line describes: the current one when it has
    /// that name, no samples yet and no such line yet; a new one otherwise.
    fn family_for_meta(&mut self, name: &'a str, meta: Meta, number: u32) -> &mut Family<'a> {
        let reuse = self.families.last().is_some_and(|f| {
            f.name == name
                && f.samples.is_empty()
                && match meta {
                    Meta::Help => f.lines.help == 0,
                    Meta::Type => f.lines.kind == 0,
                    Meta::Unit => f.lines.unit == 0,
                }
        });
        if !reuse {
            self.families
                .push(Family::new(name, number, self.samples.len()));
        }
        let last = self.families.len() - 1;
        &mut self.families[last]
    }

    fn add_sample(&mut self, sample: Sample<'a>) {
        let joins = self
            .families
            .last()
            .is_some_and(|family| family.kind.admits(Self::FORMAT, family.name, sample.name));
        if !joins {
            let family = Family::new(sample.name, sample.line, self.samples.len());
            self.families.push(family);
        }
        self.samples.push(sample);
        if let Some(family) = self.families.last_mut() {
            family.samples.end = self.samples.len();
        }
    }

    fn sample(&self, line: &'a str, start: usize, number: u32) -> Result<Sample<'a>, LineError> {
        let bytes = line.as_bytes();
        let name_end = metric_name_end(bytes, start).ok_or((start, ParseErrorKind::MetricName))?;
        let name = &line[start..name_end];
        let mut i = name_end;
        let mut labels = Labels::default();
        if !OM && bytes.get(skip_blank(bytes, i)) == Some(&b'{') {
            i = skip_blank(bytes, i);
        }
        if bytes.get(i) == Some(&b'{') {
            let set = label_set::<OM>(bytes, i + 1)?;
            labels = Labels::new(&line[i + 1..set.end], set.names, set.canonical);
            i = set.end + 1;
        }
        let value_start = separator::<OM>(bytes, i)?;
        let value_end = word_end(bytes, value_start);
        let value = &line[value_start..value_end];
        if !value::is_float(value.as_bytes()) {
            return Err((value_start, ParseErrorKind::Value(value.to_owned())));
        }
        let mut sample = Sample {
            name,
            labels,
            value,
            tail: "",
            line: number,
        };
        i = if OM {
            value_end
        } else {
            skip_blank(bytes, value_end)
        };
        if i == bytes.len() {
            return Ok(sample);
        }
        if !OM {
            if bytes[i] == b'#' {
                return Err((i, ParseErrorKind::ExemplarInText));
            }
            let end = word_end(bytes, i);
            let timestamp = &line[i..end];
            if !value::is_millis(timestamp) {
                return Err((i, timestamp_error(timestamp, "integer milliseconds")));
            }
            sample.tail = timestamp;
            let rest = skip_blank(bytes, end);
            if rest != bytes.len() {
                return Err((rest, expected("the end of the line", bytes, rest)));
            }
            return Ok(sample);
        }
        i = separator::<OM>(bytes, i)?;
        sample.tail = &line[i..];
        if bytes[i] != b'#' {
            let end = word_end(bytes, i);
            let timestamp = &line[i..end];
            if !value::is_seconds(timestamp) {
                return Err((i, timestamp_error(timestamp, "seconds")));
            }
            if end == bytes.len() {
                return Ok(sample);
            }
            i = separator::<OM>(bytes, end)?;
            if bytes[i] != b'#' {
                return Err((i, expected("' # ' before an exemplar", bytes, i)));
            }
        }
        let exemplar_start = separator::<OM>(bytes, i + 1)?;
        exemplar(bytes, exemplar_start)?;
        Ok(sample)
    }
}

fn timestamp_error(text: &str, what: &'static str) -> ParseErrorKind {
    ParseErrorKind::Timestamp(text.to_owned(), what)
}

#[derive(Clone, Copy)]
enum Meta {
    Help,
    Type,
    Unit,
}

enum Line {
    Eof,
    Other,
}

fn located(line: &str, number: u32, (offset, kind): LineError) -> ParseError {
    let offset = offset.min(line.len());
    let column = line.char_indices().take_while(|(i, _)| *i < offset).count() + 1;
    ParseError {
        line: number,
        column: clamp(column),
        kind,
    }
}

fn expected(what: &'static str, bytes: &[u8], at: usize) -> ParseErrorKind {
    let found = bytes.get(at).map(|_| {
        // `at` is on a character boundary in every caller.
        std::str::from_utf8(&bytes[at..])
            .ok()
            .and_then(|s| s.chars().next())
            .unwrap_or('\u{fffd}')
    });
    ParseErrorKind::Expected {
        expected: what,
        found: Found(found),
    }
}

/// Skips the separator before the next token and returns where it starts:
/// exactly one space in OpenMetrics, one or more blanks in text.
fn separator<const OM: bool>(bytes: &[u8], at: usize) -> Result<usize, LineError> {
    if OM {
        if bytes.get(at) != Some(&b' ') {
            return Err((at, expected("a space", bytes, at)));
        }
        match bytes.get(at + 1) {
            Some(b' ') => Err((at + 1, expected("a single space", bytes, at + 1))),
            None => Err((at + 1, expected("a value after the space", bytes, at + 1))),
            Some(_) => Ok(at + 1),
        }
    } else {
        let next = skip_blank(bytes, at);
        if next == at && at < bytes.len() {
            return Err((at, expected("whitespace", bytes, at)));
        }
        if next == bytes.len() {
            return Err((next, expected("a value", bytes, next)));
        }
        Ok(next)
    }
}

/// A label set as [`label_set`] found it.
struct LabelSetText {
    /// The index of the closing `}`.
    end: usize,
    /// The Bloom filter of its names.
    names: u32,
    /// See [`Labels::is_canonical`].
    canonical: bool,
}

/// Parses `name="value",...}` from `at` (just after `{`).
fn label_set<const OM: bool>(bytes: &[u8], at: usize) -> Result<LabelSetText, LineError> {
    let mut count = 0;
    let mut canonical = true;
    let mut bloom = 0;
    let done = |end, bloom, canonical| LabelSetText {
        end,
        names: bloom,
        canonical,
    };
    let mut i = at;
    loop {
        if !OM {
            let next = skip_blank(bytes, i);
            canonical &= next == i;
            i = next;
        }
        match bytes.get(i) {
            Some(b'}') if count == 0 || !OM => {
                // A trailing comma (text only) leaves the set non-canonical.
                canonical &= count == 0 || bytes[i - 1] != b',';
                return Ok(done(i, bloom, canonical));
            }
            None => return Err((i, expected("a label name or '}'", bytes, i))),
            _ => {}
        }
        let name_start = i;
        let name_end = label_name_end(bytes, i).ok_or((i, ParseErrorKind::LabelName))?;
        let name = &bytes[name_start..name_end];
        i = name_end;
        if !OM {
            let next = skip_blank(bytes, i);
            canonical &= next == i;
            i = next;
        }
        if bytes.get(i) != Some(&b'=') {
            return Err((i, expected("'=' after the label name", bytes, i)));
        }
        i += 1;
        if !OM {
            let next = skip_blank(bytes, i);
            canonical &= next == i;
            i = next;
        }
        if bytes.get(i) != Some(&b'"') {
            return Err((i, expected("'\"' to open the label value", bytes, i)));
        }
        let (end, standard) = label_value(bytes, i + 1)?;
        canonical &= standard;
        // The Bloom filter rules out a duplicate for almost every label;
        // only a possible one is checked against the labels before it.
        let bit = crate::model::name_bit(name);
        if bloom & bit != 0 && seen_before(&bytes[at..name_start], name) {
            let name = String::from_utf8_lossy(name).into_owned();
            return Err((name_start, ParseErrorKind::DuplicateLabel(name)));
        }
        if count == MAX_LABELS {
            return Err((name_start, ParseErrorKind::TooManyLabels(MAX_LABELS)));
        }
        count += 1;
        bloom |= bit;
        i = end + 1;
        if !OM {
            let next = skip_blank(bytes, i);
            canonical &= next == i;
            i = next;
        }
        match bytes.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => return Ok(done(i, bloom, canonical)),
            _ => return Err((i, expected("',' or '}' after the label value", bytes, i))),
        }
    }
}

/// Whether the checked label text `before` has a label called `name`.
fn seen_before(before: &[u8], name: &[u8]) -> bool {
    std::str::from_utf8(before).is_ok_and(|text| {
        Labels::new(text, u32::MAX, false)
            .iter()
            .any(|label| label.name.as_bytes() == name)
    })
}

/// Finds the closing quote of a label value starting at `at`. Returns its
/// index and whether every escape is one of `\\`, `\"` and `\n`.
fn label_value(bytes: &[u8], at: usize) -> Result<(usize, bool), LineError> {
    // Label values are short: a byte loop beats setting up `memchr2`.
    let mut i = at;
    let mut standard = true;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return Ok((i, standard)),
            b'\\' => {
                match bytes.get(i + 1) {
                    Some(b'\\' | b'"' | b'n') => {}
                    Some(_) => standard = false,
                    None => break,
                }
                i += 2;
            }
            _ => i += 1,
        }
    }
    Err((at.saturating_sub(1), ParseErrorKind::UnterminatedValue))
}

/// Checks an exemplar: `{labels} value [timestamp]`.
fn exemplar(bytes: &[u8], at: usize) -> Result<(), LineError> {
    if bytes.get(at) != Some(&b'{') {
        return Err((
            at,
            ParseErrorKind::Exemplar("expected '{' to open its labels"),
        ));
    }
    let end = label_set::<true>(bytes, at + 1)?.end;
    let value_start = separator::<true>(bytes, end + 1)?;
    let value_end = word_end(bytes, value_start);
    if !value::is_float(&bytes[value_start..value_end]) {
        return Err((
            value_start,
            ParseErrorKind::Exemplar("the value is not a number"),
        ));
    }
    if value_end == bytes.len() {
        return Ok(());
    }
    let ts_start = separator::<true>(bytes, value_end)?;
    let ts_end = word_end(bytes, ts_start);
    let timestamp = std::str::from_utf8(&bytes[ts_start..ts_end]).unwrap_or("");
    if !value::is_seconds(timestamp) {
        return Err((
            ts_start,
            ParseErrorKind::Exemplar("the timestamp is not a number of seconds"),
        ));
    }
    if ts_end != bytes.len() {
        return Err((
            ts_end,
            ParseErrorKind::Exemplar("unexpected text after the timestamp"),
        ));
    }
    Ok(())
}

fn skip_blank(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
        i += 1;
    }
    i
}

fn word_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && !matches!(bytes[i], b' ' | b'\t') {
        i += 1;
    }
    i
}

const fn class(start: bool, colon: bool) -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphabetic()
            || c == b'_'
            || (colon && c == b':')
            || (!start && c.is_ascii_digit());
        b += 1;
    }
    table
}

static METRIC_START: [bool; 256] = class(true, true);
static METRIC_CHAR: [bool; 256] = class(false, true);
static LABEL_START: [bool; 256] = class(true, false);
static LABEL_CHAR: [bool; 256] = class(false, false);

fn name_end(bytes: &[u8], at: usize, start: &[bool; 256], rest: &[bool; 256]) -> Option<usize> {
    if !start[usize::from(*bytes.get(at)?)] {
        return None;
    }
    let colon = rest[usize::from(b':')];
    let mut i = at + 1;
    // Eight bytes at a time while they are all name characters, then byte
    // by byte: names are a few dozen bytes and this loop was a fifth of
    // the parse.
    while let Some(word) = bytes.get(i..i + 8) {
        let word = u64::from_le_bytes([
            word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7],
        ]);
        let others = !name_bytes(word, colon) & HIGH_BITS;
        if others != 0 {
            return Some(i + (others.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    while i < bytes.len() && rest[usize::from(bytes[i])] {
        i += 1;
    }
    Some(i)
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `word` that is in `lo..=hi`; the bytes must
/// be below 0x80 so that no sum carries into its neighbour.
const fn in_range(word: u64, lo: u8, hi: u8) -> u64 {
    let at_least_lo = word + ONES * (0x80 - lo as u64);
    let above_hi = word + ONES * (0x7f - hi as u64);
    at_least_lo & !above_hi & HIGH_BITS
}

/// The high bit of each byte of `word` that can continue a name:
/// `[a-zA-Z0-9_]`, and `:` when `colon`.
const fn name_bytes(word: u64, colon: bool) -> u64 {
    let ascii = !word & HIGH_BITS;
    let low = word & !HIGH_BITS;
    let mut class = in_range(low, b'0', b'9')
        | in_range(low, b'A', b'Z')
        | in_range(low, b'a', b'z')
        | in_range(low, b'_', b'_');
    if colon {
        class |= in_range(low, b':', b':');
    }
    class & ascii
}

/// The end of a metric name starting at `at`, if one starts there.
pub(crate) fn metric_name_end(bytes: &[u8], at: usize) -> Option<usize> {
    name_end(bytes, at, &METRIC_START, &METRIC_CHAR)
}

/// The end of a label name starting at `at`, if one starts there.
pub(crate) fn label_name_end(bytes: &[u8], at: usize) -> Option<usize> {
    name_end(bytes, at, &LABEL_START, &LABEL_CHAR)
}

/// Whether `name` is a valid metric name.
pub fn is_metric_name(name: &str) -> bool {
    metric_name_end(name.as_bytes(), 0) == Some(name.len())
}

/// Whether `name` is a valid label name.
pub fn is_label_name(name: &str) -> bool {
    label_name_end(name.as_bytes(), 0) == Some(name.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_scan_agrees_with_the_byte_tables() {
        // Every byte value at every position of a word, for both classes.
        for byte in 0..=255u8 {
            for position in 0..8 {
                let mut text = [b'a'; 12];
                text[1 + position] = byte;
                let expected_metric = if METRIC_CHAR[usize::from(byte)] {
                    12
                } else {
                    1 + position
                };
                let expected_label = if LABEL_CHAR[usize::from(byte)] {
                    12
                } else {
                    1 + position
                };
                assert_eq!(
                    metric_name_end(&text, 0),
                    Some(expected_metric),
                    "byte {byte:#x} at {position}"
                );
                assert_eq!(
                    label_name_end(&text, 0),
                    Some(expected_label),
                    "byte {byte:#x} at {position}"
                );
            }
        }
    }
}
