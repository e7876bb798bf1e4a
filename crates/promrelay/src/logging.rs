//! `--log.level` and `--log.format`, as Prometheus exporters spell them:
//! `logfmt` (the default) or `json`, on standard error.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// `--log.level`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum LogLevel {
    /// Everything, for finding a problem.
    Debug,
    /// What an operator wants to know.
    Info,
    /// Things that went wrong but were handled.
    Warn,
    /// Things that need attention.
    Error,
}

/// `--log.format`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// `ts=... level=info msg="..." key=value`.
    Logfmt,
    /// One JSON object per line.
    Json,
}

/// The logging flags every long-running mode takes.
#[derive(Debug, clap::Args)]
pub(crate) struct LogArgs {
    /// Only log messages of this level or above.
    #[arg(long = "log.level", value_enum, default_value = "info")]
    level: LogLevel,
    /// How log lines are written.
    #[arg(long = "log.format", value_enum, default_value = "logfmt")]
    format: LogFormat,
}

/// Installs the global subscriber.
pub(crate) fn init(args: &LogArgs) {
    let format = args.format;
    let level = match args.level {
        LogLevel::Debug => Level::DEBUG,
        LogLevel::Info => Level::INFO,
        LogLevel::Warn => Level::WARN,
        LogLevel::Error => Level::ERROR,
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Logfmt => builder.event_format(Logfmt).init(),
    }
}

/// The logfmt line format: timestamp, level, message, then the fields.
struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        write!(
            writer,
            "ts={}.{:03} level={}",
            now.as_secs(),
            now.subsec_millis(),
            event.metadata().level().as_str().to_ascii_lowercase()
        )?;
        let mut fields = Fields::default();
        event.record(&mut fields);
        write!(writer, " msg={}", quote(&fields.message))?;
        for (name, value) in &fields.pairs {
            write!(writer, " {name}={}", quote(value))?;
        }
        writeln!(writer)
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    pairs: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.pairs.push((field.name(), value.to_owned()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

fn quote(value: &str) -> String {
    if !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'=')
    {
        value.to_owned()
    } else {
        format!("{value:?}")
    }
}
