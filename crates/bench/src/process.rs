//! A process's memory and CPU time, read from `/proc/<pid>` (Linux).

use std::sync::OnceLock;
use std::time::Duration;

/// Resident memory now (`VmRSS`), in bytes.
pub(crate) fn rss(pid: u32) -> Result<u64, String> {
    status_field(pid, "VmRSS:")
}

/// The highest resident memory since start or since [`reset_peak`]
/// (`VmHWM`), in bytes.
pub(crate) fn peak_rss(pid: u32) -> Result<u64, String> {
    status_field(pid, "VmHWM:")
}

/// Makes `VmHWM` start again from the current RSS, so a peak read later
/// belongs to what happened in between. Needs Linux 4.0 or later.
pub(crate) fn reset_peak(pid: u32) -> Result<(), String> {
    let path = format!("/proc/{pid}/clear_refs");
    std::fs::write(&path, "5").map_err(|e| format!("cannot write {path}: {e}"))
}

/// User plus system CPU time the process has used so far.
pub(crate) fn cpu_time(pid: u32) -> Result<Duration, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    // The command name (field 2) may hold spaces and parentheses: count
    // fields from after its closing parenthesis, where field 3 starts.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |number: usize| -> Result<u64, String> {
        fields
            .get(number - 3)
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| format!("{path}: no field {number}"))
    };
    let ticks = field(14)? + field(15)?;
    Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
}

fn status_field(pid: u32, name: &str) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|value| value.trim().strip_suffix(" kB"))
        .and_then(|kib| kib.trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| format!("{path}: no {name} line"))
}

/// The unit of the CPU times in `/proc/<pid>/stat` (`sysconf(_SC_CLK_TCK)`),
/// asked of `getconf` since this crate has no unsafe code to call libc.
fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|output| String::from_utf8(output.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .filter(|&ticks| ticks > 0)
            // The value on every Linux architecture in use.
            .unwrap_or(100)
    })
}

/// Bytes as MiB, for printing.
pub(crate) fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// File descriptors this process and the gateway need besides one per
/// agent (listeners, logs, clients).
const SPARE_FILES: u64 = 256;

/// Raises this process's soft open-file limit to the hard one (children,
/// the gateway among them, inherit it); fails when one file per agent does
/// not fit.
pub(crate) fn raise_open_files_limit(agents: usize) -> Result<(), String> {
    let limit = rlimit::increase_nofile_limit(u64::MAX)
        .map_err(|e| format!("cannot raise the open-file limit: {e}"))?;
    let needed = agents as u64 + SPARE_FILES;
    if limit < needed {
        return Err(format!(
            "{agents} agents need {needed} open files in this process and in the gateway, \
             the hard limit is {limit}: raise it (ulimit -Hn) or connect fewer agents"
        ));
    }
    Ok(())
}
