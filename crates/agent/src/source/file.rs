//! `file` sources: `.prom` files read at scrape time, as node_exporter's
//! textfile collector reads them, but on demand.
//!
//! The files matching the glob are parsed one by one and merged into one
//! page (every family once); each file's modification time is exposed. A
//! malformed file is left out and reported; the other files are served.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use exposition::{Format, LabelSet, SourcePage};

use crate::config::FileConfig;
use crate::source::{ScrapeContext, Scraped, Series, SourceError};

/// A glob of `.prom` files.
#[derive(Debug)]
pub struct FileSource {
    config: FileConfig,
}

struct ReadFile {
    path: PathBuf,
    body: Vec<u8>,
    modified: f64,
}

impl FileSource {
    /// A source for the files `config.glob` matches.
    pub fn new(config: FileConfig) -> FileSource {
        FileSource { config }
    }

    /// Reads and merges the files, within the context's deadline.
    pub async fn scrape(&self, ctx: &ScrapeContext) -> Result<Scraped, SourceError> {
        let config = self.config.clone();
        let budget = ctx.budget(std::time::Duration::MAX);
        let read = tokio::task::spawn_blocking(move || read_files(&config));
        let files = match tokio::time::timeout(budget, read).await {
            Ok(joined) => joined.map_err(|e| SourceError::Io(e.to_string()))??,
            Err(_) => return Err(SourceError::Timeout(budget)),
        };
        merge_files(&files)
    }
}

fn read_files(config: &FileConfig) -> Result<Vec<ReadFile>, SourceError> {
    let paths = glob::glob(&config.glob).map_err(|e| SourceError::Io(e.to_string()))?;
    let mut files = Vec::new();
    for entry in paths {
        let path = entry.map_err(|e| SourceError::Io(e.to_string()))?;
        if !path.is_file() {
            continue;
        }
        if files.len() == config.max_files {
            return Err(SourceError::TooLarge(config.max_files));
        }
        files.push(read_file(&path, config.max_file_size)?);
    }
    Ok(files)
}

fn read_file(path: &Path, limit: usize) -> Result<ReadFile, SourceError> {
    let io = |e: std::io::Error| SourceError::Io(format!("{}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(io)?;
    let modified = file
        .metadata()
        .and_then(|m| m.modified())
        .map_err(io)?
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mut body = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut body)
        .map_err(io)?;
    if body.len() > limit {
        return Err(SourceError::TooLarge(limit));
    }
    Ok(ReadFile {
        path: path.to_owned(),
        body,
        modified,
    })
}

fn merge_files(files: &[ReadFile]) -> Result<Scraped, SourceError> {
    let mut extra = Vec::with_capacity(files.len());
    let mut first_error = None;
    let mut pages = Vec::with_capacity(files.len());
    for file in files {
        let path = file.path.display().to_string();
        extra.push(Series {
            family: "promrelay_file_mtime_seconds",
            help: "Modification time of a file read by a file source.",
            labels: vec![("file", path.clone())],
            value: file.modified,
        });
        let format = Format::sniff(&file.body);
        match exposition::parse(&file.body, format) {
            Ok(page) => pages.push((format, page)),
            Err(e) => {
                tracing::warn!(file = %path, error = %e, "file source: malformed file left out");
                first_error.get_or_insert(SourceError::Parse(format!("{path}:{e}")));
            }
        }
    }
    let no_labels = LabelSet::default();
    let sources: Vec<_> = pages
        .iter()
        .map(|(format, page)| SourcePage {
            name: "",
            format: *format,
            page,
            labels: &no_labels,
        })
        .collect();
    let all_openmetrics = !pages.is_empty() && pages.iter().all(|(f, _)| *f == Format::OpenMetrics);
    let to = if all_openmetrics {
        Format::OpenMetrics
    } else {
        Format::Text
    };
    let mut body = Vec::new();
    exposition::merge(&sources, to, &mut body);
    if pages.is_empty() {
        if let Some(error) = first_error {
            return Err(error);
        }
    }
    Ok(Scraped {
        body: Bytes::from(body),
        format: to,
        extra,
        stale_error: first_error,
    })
}
