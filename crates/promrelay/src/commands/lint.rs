//! `promrelay lint`: reads a page, prints every problem as `LINE:COL:
//! message`, and exits 0 when the page is valid, 1 when it is not, 2 when
//! the command itself was used wrongly.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use exposition::{parse, validate_strict, Format};

/// Arguments of `promrelay lint`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The page's format; by default OpenMetrics when it ends with `# EOF`,
    /// text otherwise.
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// `lenient` accepts what Prometheus's scraper accepts; `strict` also
    /// applies every rule of the OpenMetrics specification.
    #[arg(long, value_enum, default_value = "strict")]
    level: Level,
    /// The page to check; `-` or nothing reads standard input.
    file: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum FormatArg {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0 text.
    Openmetrics,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Level {
    /// What Prometheus's own scraper accepts.
    Lenient,
    /// Everything a strict parser requires.
    Strict,
}

/// Upper bound on the page read, so a mistaken argument cannot exhaust
/// memory.
const MAX_PAGE: u64 = 1 << 30;

pub(crate) fn run(args: &Args) -> ExitCode {
    let input = match read(args.file.as_deref()) {
        Ok(input) => input,
        Err(message) => {
            eprintln!("promrelay lint: {message}");
            return ExitCode::from(2);
        }
    };
    let format = match args.format {
        Some(FormatArg::Text) => Format::Text,
        Some(FormatArg::Openmetrics) => Format::OpenMetrics,
        None => Format::sniff(&input),
    };
    let page = match parse(&input, format) {
        Ok(page) => page,
        Err(error) => {
            println!("{error}");
            return ExitCode::from(1);
        }
    };
    if args.level == Level::Lenient {
        return ExitCode::SUCCESS;
    }
    let violations = validate_strict(&page, format);
    for violation in &violations {
        println!("{violation}");
    }
    if violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn read(file: Option<&std::path::Path>) -> Result<Vec<u8>, String> {
    let mut input = Vec::new();
    match file {
        None => read_bounded(std::io::stdin().lock(), &mut input, "standard input"),
        Some(path) if path.as_os_str() == "-" => {
            read_bounded(std::io::stdin().lock(), &mut input, "standard input")
        }
        Some(path) => {
            let file = std::fs::File::open(path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            read_bounded(file, &mut input, &path.display().to_string())
        }
    }?;
    Ok(input)
}

fn read_bounded(reader: impl Read, into: &mut Vec<u8>, what: &str) -> Result<(), String> {
    reader
        .take(MAX_PAGE + 1)
        .read_to_end(into)
        .map_err(|e| format!("cannot read {what}: {e}"))?;
    if into.len() as u64 > MAX_PAGE {
        return Err(format!("{what} is larger than {MAX_PAGE} bytes"));
    }
    Ok(())
}
