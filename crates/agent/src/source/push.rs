//! `push` sources: groups that short-lived jobs pushed to this agent with
//! the Pushgateway API, served on the merged page until they expire.
//!
//! The store ([`push::PushStore`]) belongs to the agent, not to one
//! configuration: it is opened once at start in `--storage.path`, its API
//! is mounted on the agent's port (`/metrics/job/...`), and a reload keeps
//! it. A scrape reads the live groups as Pushgateway would serve them, with
//! `push_time_seconds` and `push_failure_time_seconds` per group.

use std::sync::Arc;

use bytes::Bytes;
use exposition::Format;
use push::PushStore;

use crate::source::Scraped;

/// The agent's push store, as one page.
#[derive(Debug)]
pub struct PushSource {
    store: Arc<PushStore>,
}

impl PushSource {
    /// A source serving `store`'s live groups.
    pub fn new(store: Arc<PushStore>) -> PushSource {
        PushSource { store }
    }

    /// The live groups now. Reading the store cannot fail: it is in
    /// memory, and what is in memory is on disk.
    pub fn scrape(&self) -> Scraped {
        let mut page = Vec::new();
        self.store.write_page(&mut page);
        Scraped::fresh(Bytes::from(page), Format::Text)
    }
}
