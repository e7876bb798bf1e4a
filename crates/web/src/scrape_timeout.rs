//! Prometheus's scrape timeout header, read the same way by every listener
//! that answers scrapes (the agent, the gateway's path and fan-in modes).

use std::time::Duration;

use http::HeaderMap;

/// The header Prometheus sends with every scrape: the seconds it will wait.
pub const SCRAPE_TIMEOUT_HEADER: &str = "x-prometheus-scrape-timeout-seconds";

/// The most that is kept back from a scrape timeout for answering.
pub const MAX_MARGIN: Duration = Duration::from_millis(500);

/// The timeout the scraper asked for, capped by `cap`; `None` when the
/// header is absent or not a positive number of seconds.
pub fn requested_scrape_timeout(headers: &HeaderMap, cap: Duration) -> Option<Duration> {
    let seconds = headers
        .get(SCRAPE_TIMEOUT_HEADER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)?;
    Some(if seconds >= cap.as_secs_f64() {
        cap
    } else {
        Duration::from_secs_f64(seconds)
    })
}

/// The time to spend working within `timeout`: 10 % less, at most
/// [`MAX_MARGIN`] less, so that a late part costs only itself and the
/// answer still reaches the scraper in time.
pub fn work_budget(timeout: Duration) -> Duration {
    timeout.saturating_sub((timeout / 10).min(MAX_MARGIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(SCRAPE_TIMEOUT_HEADER, value.parse().unwrap());
        headers
    }

    #[test]
    fn reads_and_caps_the_header() {
        let cap = Duration::from_secs(10);
        assert_eq!(
            requested_scrape_timeout(&headers("1.5"), cap),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(requested_scrape_timeout(&headers(" 30 "), cap), Some(cap));
        for bad in ["0", "-1", "NaN", "inf", "soon"] {
            assert_eq!(requested_scrape_timeout(&headers(bad), cap), None, "{bad}");
        }
        assert_eq!(requested_scrape_timeout(&HeaderMap::new(), cap), None);
    }

    #[test]
    fn keeps_a_margin_for_answering() {
        assert_eq!(
            work_budget(Duration::from_secs(1)),
            Duration::from_millis(900)
        );
        assert_eq!(
            work_budget(Duration::from_secs(10)),
            Duration::from_millis(9500)
        );
        assert_eq!(work_budget(Duration::ZERO), Duration::ZERO);
    }
}
