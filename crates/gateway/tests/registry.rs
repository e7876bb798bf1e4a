//! The local registry's rules, with fake tunnel handles and tokio's paused
//! clock.

use core::future::Future;
use core::time::Duration;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use gateway::registry::TunnelHandle;
use gateway::{CredentialId, LocalRegistry, RegisterError, Route};

/// A fake tunnel: a tag to tell tunnels apart and a switch to close it.
#[derive(Clone, Debug)]
struct Fake {
    tag: u32,
    closed: Arc<AtomicBool>,
}

impl Fake {
    fn new(tag: u32) -> Fake {
        Fake {
            tag,
            closed: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl TunnelHandle for Fake {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

const RETENTION: Duration = Duration::from_secs(300);

fn registry() -> LocalRegistry<Fake> {
    LocalRegistry::new(RETENTION, 100)
}

fn connected_tag(route: Route<Fake>) -> Option<u32> {
    match route {
        Route::Connected(fake) => Some(fake.tag),
        _ => None,
    }
}

fn is_ready<F: Future + Unpin>(future: F) -> bool {
    futures::FutureExt::now_or_never(future).is_some()
}

#[tokio::test(start_paused = true)]
async fn a_late_ending_old_tunnel_does_not_disconnect_the_new_one() {
    let registry = registry();
    let shared = CredentialId::shared();
    let old = registry
        .register("a", shared.clone(), Fake::new(1))
        .unwrap();
    assert!(!old.replaced);
    let new = registry.register("a", shared, Fake::new(2)).unwrap();
    assert!(new.replaced);
    assert!(new.generation > old.generation);
    // The old tunnel is told to close; the new one is not.
    assert!(is_ready(old.released));
    let mut new_released = new.released;
    assert!(!is_ready(&mut new_released));

    assert!(!registry.mark_disconnected("a", old.generation));
    assert_eq!(connected_tag(registry.route("a")), Some(2));
    assert!(registry.mark_disconnected("a", new.generation));
    assert!(matches!(registry.route("a"), Route::Disconnected));
    // Marking twice does nothing more.
    assert!(!registry.mark_disconnected("a", new.generation));
}

#[tokio::test(start_paused = true)]
async fn another_credential_cannot_take_a_live_name() {
    let registry = registry();
    let first = registry
        .register("a", CredentialId::token("a"), Fake::new(1))
        .unwrap();
    let other = CredentialId::cert("a");
    assert!(matches!(
        registry.check("a", &other),
        Err(RegisterError::NameTaken { .. })
    ));
    assert!(matches!(
        registry.register("a", other.clone(), Fake::new(2)),
        Err(RegisterError::NameTaken { .. })
    ));
    assert_eq!(connected_tag(registry.route("a")), Some(1));

    // Once disconnected, the name is free for any credential.
    assert!(registry.mark_disconnected("a", first.generation));
    registry.register("a", other, Fake::new(3)).unwrap();
    assert_eq!(connected_tag(registry.route("a")), Some(3));
}

#[tokio::test(start_paused = true)]
async fn a_closed_tunnel_counts_as_disconnected() {
    let registry = registry();
    let fake = Fake::new(1);
    registry
        .register("a", CredentialId::token("a"), fake.clone())
        .unwrap();
    fake.closed.store(true, Ordering::Relaxed);
    assert!(matches!(registry.route("a"), Route::Disconnected));
    assert_eq!(registry.counts().connected, 0);
    assert!(registry.check("a", &CredentialId::shared()).is_ok());
}

#[tokio::test(start_paused = true)]
async fn disconnected_agents_are_forgotten_after_the_retention() {
    let registry = registry();
    let a = registry
        .register("a", CredentialId::shared(), Fake::new(1))
        .unwrap();
    let _b = registry
        .register("b", CredentialId::shared(), Fake::new(2))
        .unwrap();
    registry.mark_disconnected("a", a.generation);

    tokio::time::advance(RETENTION - Duration::from_secs(1)).await;
    assert!(matches!(registry.route("a"), Route::Disconnected));
    assert_eq!(registry.counts().known, 2);

    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(matches!(registry.route("a"), Route::Unknown));
    // Connected agents never expire.
    assert_eq!(connected_tag(registry.route("b")), Some(2));
    let agents = registry.agents();
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0].name, "b");
    assert!(agents[0].connected);
}

#[tokio::test(start_paused = true)]
async fn the_number_of_agents_is_bounded() {
    let registry: LocalRegistry<Fake> = LocalRegistry::new(RETENTION, 2);
    let a = registry
        .register("a", CredentialId::shared(), Fake::new(1))
        .unwrap();
    registry
        .register("b", CredentialId::shared(), Fake::new(2))
        .unwrap();
    assert_eq!(
        registry
            .register("c", CredentialId::shared(), Fake::new(3))
            .unwrap_err(),
        RegisterError::Full { max: 2 }
    );
    // Known names may still reconnect.
    registry
        .register("b", CredentialId::shared(), Fake::new(4))
        .unwrap();
    // A disconnected entry still holds its place until it expires.
    registry.mark_disconnected("a", a.generation);
    assert!(registry.check("c", &CredentialId::shared()).is_err());
    tokio::time::advance(RETENTION).await;
    registry
        .register("c", CredentialId::shared(), Fake::new(5))
        .unwrap();
    assert_eq!(registry.counts().known, 2);
}
