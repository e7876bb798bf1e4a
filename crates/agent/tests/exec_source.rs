//! `exec` sources against real processes: the scripts in `tests/scripts/`,
//! run through `/bin/sh`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use agent::source::exec::{ExecSource, ExecSpec, ParamRule, ParamTarget};
use agent::source::{ScrapeContext, SourceError};
use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use testkit::TempDir;
use tokio::sync::Semaphore;
use tokio::time::Instant;

fn script(name: &str) -> String {
    format!("{}/tests/scripts/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// An on-demand spec running `tests/scripts/<name>` with `env`.
fn spec(name: &str, env: &[(&str, &Path)]) -> ExecSpec {
    ExecSpec {
        command: "/bin/sh".into(),
        args: vec![script(name)],
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_str().unwrap().to_owned()))
            .collect(),
        timeout: Duration::from_secs(5),
        max_output: 1 << 20,
        interval: None,
        max_age: Duration::ZERO,
        params: Vec::new(),
    }
}

fn source(spec: ExecSpec, permits: usize) -> ExecSource {
    spec.validate().unwrap();
    ExecSource::new("test".into(), spec, Arc::new(Semaphore::new(permits)))
}

fn ctx(within: Duration, params: &[(&str, &str)]) -> ScrapeContext {
    ScrapeContext {
        deadline: Instant::now() + within,
        params: params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |s| s.lines().count())
}

fn pids(path: &Path) -> Vec<Pid> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| Pid::from_raw(line.trim().parse().unwrap()))
        .collect()
}

/// Dead: no such process, or a zombie (killed; a child re-parented to a
/// pid 1 that does not reap stays one forever, and is gone all the same).
fn is_dead(pid: Pid) -> bool {
    match kill(pid, None) {
        Err(Errno::ESRCH) => true,
        Ok(()) => std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
                Some(state == 'Z' || state == 'X')
            })
            .unwrap_or(false),
        Err(e) => panic!("kill({pid}, 0): {e}"),
    }
}

/// Waits up to 2 s for every pid to be gone.
async fn assert_gone(pids: &[Pid]) {
    assert!(!pids.is_empty());
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        let alive: Vec<_> = pids.iter().filter(|pid| !is_dead(**pid)).collect();
        if alive.is_empty() {
            return;
        }
        assert!(Instant::now() < until, "still running: {alive:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_scrapes_share_one_run() {
    let dir = TempDir::new("exec-coalesce");
    let count = dir.join("count");
    let mut spec = spec("counted_page.sh", &[("COUNT_FILE", &count)]);
    spec.env.push(("SLEEP".into(), "1".into()));
    let source = Arc::new(source(spec, 4));

    let started = Instant::now();
    let mut scrapes = Vec::new();
    for _ in 0..200 {
        let source = Arc::clone(&source);
        scrapes.push(tokio::spawn(async move {
            source.scrape(&ctx(Duration::from_secs(5), &[])).await
        }));
    }
    // One more joins with a deadline before the run ends: it gives up alone.
    let impatient = source.scrape(&ctx(Duration::from_millis(200), &[])).await;
    assert!(
        matches!(impatient, Err(SourceError::Timeout(_))),
        "{impatient:?}"
    );

    for scrape in scrapes {
        let page = scrape.await.unwrap().unwrap();
        assert_eq!(
            page.body.as_ref(),
            b"# TYPE test_value gauge\ntest_value{arg=\"\",env=\"\"} 1\n"
        );
        assert_eq!(page.format, exposition::Format::Text);
        assert!(page.stale_error.is_none());
    }
    assert_eq!(lines(&count), 1, "one run for 201 scrapes");
    assert!(started.elapsed() < Duration::from_secs(3));

    // The run is over: the next scrape runs the command again.
    source
        .scrape(&ctx(Duration::from_secs(5), &[]))
        .await
        .unwrap();
    assert_eq!(lines(&count), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parameters_reach_the_command_exactly_and_split_runs() {
    let dir = TempDir::new("exec-params");
    let count = dir.join("count");
    let mut spec = spec("counted_page.sh", &[("COUNT_FILE", &count)]);
    spec.env.push(("SLEEP".into(), "0.3".into()));
    spec.params = vec![
        ParamRule::new("target", "[a-z0-9 *$;]+", ParamTarget::Arg).unwrap(),
        ParamRule::new("mode", "[a-z]+", ParamTarget::Env("VAR".into())).unwrap(),
    ];
    let source = source(spec, 4);

    let a = ctx(
        Duration::from_secs(5),
        &[("target", "a b*;$x"), ("mode", "fast")],
    );
    let b = ctx(Duration::from_secs(5), &[("target", "c"), ("mode", "slow")]);
    let (a, b) = tokio::join!(source.scrape(&a), source.scrape(&b));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(lines(&count), 2, "different parameters, different runs");
    assert!(
        std::str::from_utf8(&a.body)
            .unwrap()
            .contains("test_value{arg=\"a b*;$x\",env=\"fast\"} 1\n"),
        "{:?}",
        a.body
    );
    assert!(
        std::str::from_utf8(&b.body)
            .unwrap()
            .contains("test_value{arg=\"c\",env=\"slow\"} 1\n"),
        "{:?}",
        b.body
    );

    // The source checks the values again; nothing runs for a bad one.
    for params in [[("target", "a\n")], [("other", "x")]] {
        let refused = source.scrape(&ctx(Duration::from_secs(5), &params)).await;
        assert!(
            matches!(refused, Err(SourceError::Command(_))),
            "{refused:?}"
        );
    }
    assert_eq!(lines(&count), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_kills_the_whole_process_group() {
    let dir = TempDir::new("exec-timeout");
    let pid_file = dir.join("pids");
    let mut spec = spec("ignore_term.sh", &[("PID_FILE", &pid_file)]);
    spec.timeout = Duration::from_millis(500);
    let source = source(spec, 1);

    let started = Instant::now();
    let result = source.scrape(&ctx(Duration::from_secs(5), &[])).await;
    assert_eq!(
        result.unwrap_err(),
        SourceError::Timeout(Duration::from_millis(500))
    );
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let pids = pids(&pid_file);
    assert_eq!(pids.len(), 2);
    assert_gone(&pids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_nobody_waits_for_is_stopped() {
    let dir = TempDir::new("exec-abandoned");
    let pid_file = dir.join("pids");
    let source = source(spec("ignore_term.sh", &[("PID_FILE", &pid_file)]), 1);

    // The spec allows 5 s, but the only scrape gives up after 300 ms.
    let result = source.scrape(&ctx(Duration::from_millis(300), &[])).await;
    assert!(matches!(result, Err(SourceError::Timeout(_))), "{result:?}");
    let pids = pids(&pid_file);
    assert_eq!(pids.len(), 2);
    assert_gone(&pids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_scrape_extends_the_run_it_joins() {
    let dir = TempDir::new("exec-extend");
    let count = dir.join("count");
    let mut spec = spec("counted_page.sh", &[("COUNT_FILE", &count)]);
    spec.env.push(("SLEEP".into(), "0.6".into()));
    let source = source(spec, 1);

    let impatient = ctx(Duration::from_millis(300), &[]);
    let first = source.scrape(&impatient);
    let second = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        source.scrape(&ctx(Duration::from_secs(3), &[])).await
    };
    let (first, second) = tokio::join!(first, second);
    assert!(matches!(first, Err(SourceError::Timeout(_))), "{first:?}");
    assert!(second.is_ok(), "{second:?}");
    assert_eq!(lines(&count), 1, "the second scrape joined the first run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_over_the_cap_is_refused_and_the_group_killed() {
    let dir = TempDir::new("exec-cap");
    let pid_file = dir.join("pids");
    let source = source(spec("flood.sh", &[("PID_FILE", &pid_file)]), 1);

    let result = source.scrape(&ctx(Duration::from_secs(5), &[])).await;
    assert_eq!(result.unwrap_err(), SourceError::TooLarge(1 << 20));
    let pids = pids(&pid_file);
    assert_eq!(pids.len(), 2);
    assert_gone(&pids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_straggler_holding_stdout_does_not_hold_the_scrape() {
    let dir = TempDir::new("exec-straggler");
    let pid_file = dir.join("pids");
    let source = source(spec("straggler.sh", &[("PID_FILE", &pid_file)]), 1);

    let started = Instant::now();
    let page = source
        .scrape(&ctx(Duration::from_secs(5), &[]))
        .await
        .unwrap();
    assert_eq!(page.body.as_ref(), b"straggler_value 1\n");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_gone(&pids(&pid_file)).await;
}

#[tokio::test]
async fn failures_say_what_went_wrong() {
    let failed = source(spec("fail.sh", &[]), 1)
        .scrape(&ctx(Duration::from_secs(5), &[]))
        .await;
    assert_eq!(
        failed.unwrap_err(),
        SourceError::Command("exit status 3: the disk is on fire".into())
    );

    let garbage = source(spec("garbage.sh", &[]), 1)
        .scrape(&ctx(Duration::from_secs(5), &[]))
        .await;
    match garbage {
        Err(SourceError::Parse(message)) => assert!(message.starts_with("2:"), "{message}"),
        other => panic!("{other:?}"),
    }

    let mut missing = spec("fail.sh", &[]);
    missing.command = "promrelay-no-such-program".into();
    let missing = source(missing, 1)
        .scrape(&ctx(Duration::from_secs(5), &[]))
        .await;
    assert!(
        matches!(missing, Err(SourceError::Command(_))),
        "{missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_when_no_permit_frees_up_before_the_deadline() {
    let dir = TempDir::new("exec-busy");
    let count = dir.join("count");
    let mut spec = spec("counted_page.sh", &[("COUNT_FILE", &count)]);
    spec.env.push(("SLEEP".into(), "1".into()));
    spec.params = vec![ParamRule::new("target", "[a-z]+", ParamTarget::Arg).unwrap()];
    let source = Arc::new(source(spec, 1));

    let slow = {
        let source = Arc::clone(&source);
        tokio::spawn(async move {
            source
                .scrape(&ctx(Duration::from_secs(5), &[("target", "a")]))
                .await
        })
    };
    let until = Instant::now() + Duration::from_secs(2);
    while lines(&count) == 0 {
        assert!(Instant::now() < until, "the slow run never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    let busy = source
        .scrape(&ctx(Duration::from_millis(200), &[("target", "b")]))
        .await;
    assert_eq!(busy.unwrap_err(), SourceError::Busy(1));
    assert!(started.elapsed() < Duration::from_millis(500));

    slow.await.unwrap().unwrap();
    // The refused run was abandoned, not queued for later.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(lines(&count), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_mode_serves_the_last_good_result_until_max_age() {
    let dir = TempDir::new("exec-cached");
    let count = dir.join("count");
    let flag = dir.join("fail");
    let mut spec = spec("cached.sh", &[("COUNT_FILE", &count), ("FAIL_FLAG", &flag)]);
    spec.interval = Some(Duration::from_millis(200));
    spec.max_age = Duration::from_millis(800);
    let source = source(spec, 1);

    // Not started: nothing to serve, and a scrape never runs the command.
    assert_eq!(
        source
            .scrape(&ctx(Duration::from_secs(1), &[]))
            .await
            .unwrap_err(),
        SourceError::Stale(Duration::from_millis(800))
    );
    assert_eq!(lines(&count), 0);

    let guard = source.start().unwrap();
    assert!(source.start().is_none(), "one loop per source");
    // The first scrape waits for the first run.
    let page = source
        .scrape(&ctx(Duration::from_secs(3), &[]))
        .await
        .unwrap();
    assert_eq!(page.body.as_ref(), b"cached_value 1\n");
    assert!(page.stale_error.is_none());
    let families: Vec<_> = page.extra.iter().map(|s| s.family).collect();
    assert_eq!(
        families,
        [
            "promrelay_exec_last_success_timestamp_seconds",
            "promrelay_exec_result_age_seconds"
        ]
    );
    assert!(page.extra[0].value > 1.6e9);
    assert!((0.0..0.8).contains(&page.extra[1].value));

    std::fs::write(&flag, b"").unwrap();
    let failing_since = Instant::now();
    let stale = loop {
        let page = source
            .scrape(&ctx(Duration::from_secs(1), &[]))
            .await
            .unwrap();
        if let Some(error) = page.stale_error {
            assert_eq!(page.body.as_ref(), b"cached_value 1\n");
            break error;
        }
        assert!(failing_since.elapsed() < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        stale,
        SourceError::Command("exit status 1: fail flag is set".into())
    );

    let too_old = loop {
        match source.scrape(&ctx(Duration::from_secs(1), &[])).await {
            Ok(page) => assert!(page.stale_error.is_some()),
            Err(error) => break error,
        }
        assert!(failing_since.elapsed() < Duration::from_secs(3));
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(too_old, SourceError::Stale(Duration::from_millis(800)));
    // Served for max_age after the last success, which came before the flag.
    let failed_for = failing_since.elapsed();
    assert!(
        failed_for < Duration::from_millis(800 + 500),
        "{failed_for:?}"
    );

    // Dropping the guard stops the loop.
    drop(guard);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let runs = lines(&count);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(lines(&count), runs);
}

#[test]
fn param_patterns_match_whole_values() {
    let rule = ParamRule::new("target", "[a-z]+", ParamTarget::Arg).unwrap();
    assert!(rule.accepts("abc"));
    for bad in ["abc;rm", "abc\n", "\nabc", "", "ABC", "abc def"] {
        assert!(!rule.accepts(bad), "{bad:?}");
    }
    // Alternations stay inside the anchors.
    let either = ParamRule::new("x", "a|b", ParamTarget::Arg).unwrap();
    assert!(either.accepts("a") && either.accepts("b"));
    assert!(!either.accepts("ab") && !either.accepts("xa") && !either.accepts("bx"));
    // Line anchors inside the pattern cannot open it up.
    let multiline = ParamRule::new("x", "(?m)^[a-z]+$", ParamTarget::Arg).unwrap();
    assert!(!multiline.accepts("abc\nrm -rf"));
    // A pattern that would break out of the anchoring group is refused.
    assert!(ParamRule::new("x", "[a-z]+)|(.*", ParamTarget::Arg).is_err());
    assert!(ParamRule::new("x", "(", ParamTarget::Arg).is_err());
}

#[test]
fn spec_validation() {
    let good = spec("fail.sh", &[]);
    assert_eq!(good.validate(), Ok(()));
    let rule = || ParamRule::new("p", "x", ParamTarget::Arg).unwrap();
    type Change = Box<dyn Fn(&mut ExecSpec)>;
    let cases: Vec<(&str, Change)> = vec![
        ("command", Box::new(|s| s.command.clear())),
        ("timeout", Box::new(|s| s.timeout = Duration::ZERO)),
        ("max_output", Box::new(|s| s.max_output = 0)),
        ("interval", Box::new(|s| s.interval = Some(Duration::ZERO))),
        (
            "max_age",
            Box::new(|s| {
                s.interval = Some(Duration::from_secs(10));
                s.max_age = Duration::from_secs(5);
            }),
        ),
        (
            "query parameters",
            Box::new(move |s| {
                s.interval = Some(Duration::from_secs(1));
                s.max_age = Duration::from_secs(1);
                s.params = vec![rule()];
            }),
        ),
        ("twice", Box::new(move |s| s.params = vec![rule(), rule()])),
        (
            "variable name",
            Box::new(|s| {
                s.params = vec![ParamRule::new("p", "x", ParamTarget::Env("A=B".into())).unwrap()];
            }),
        ),
        (
            "variable name",
            Box::new(|s| s.env = vec![("1X".into(), "y".into())]),
        ),
        ("NUL", Box::new(|s| s.args.push("a\0b".into()))),
    ];
    for (expected, change) in cases {
        let mut spec = good.clone();
        change(&mut spec);
        let error = spec.validate().unwrap_err();
        assert!(error.contains(expected), "{expected:?} not in {error:?}");
    }
}
