//! The shared, swappable configuration a listener serves with.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::{WebConfig, WebConfigError};

/// A cheaply cloned handle to the current [`WebConfig`].
///
/// [`serve`](crate::serve) reads it for every new connection and request;
/// storing a new configuration (say on `SIGHUP`) takes effect from then on,
/// without restarting listeners. Clones share the same configuration.
#[derive(Clone, Debug)]
pub struct WebConfigHandle {
    current: Arc<ArcSwap<WebConfig>>,
}

impl WebConfigHandle {
    /// A handle serving `config`.
    pub fn new(config: WebConfig) -> WebConfigHandle {
        WebConfigHandle {
            current: Arc::new(ArcSwap::from_pointee(config)),
        }
    }

    /// The configuration in force now.
    pub fn load(&self) -> Arc<WebConfig> {
        self.current.load_full()
    }

    /// Replaces the configuration for every clone of this handle.
    pub fn store(&self, config: WebConfig) {
        self.current.store(Arc::new(config));
    }

    /// Loads `path` and, only if it is valid, makes it the configuration in
    /// force. On error the previous configuration stays.
    pub fn reload(&self, path: &Path) -> Result<(), WebConfigError> {
        self.store(WebConfig::load(path)?);
        Ok(())
    }
}

impl From<WebConfig> for WebConfigHandle {
    fn from(config: WebConfig) -> Self {
        WebConfigHandle::new(config)
    }
}
