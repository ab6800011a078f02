//! One owner per session: the supervisor takes each enabled `whatsapp-web`
//! channel's lease in the store, opens the sessions it holds (staggered),
//! renews the leases while the pages live, closes what it lost or what was
//! disabled or deleted, and gives its leases back when it stops. A process
//! that dies stops renewing: another one takes over once the lease expired.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crm_core::{Channel, ChannelId, Crm, Result};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::KIND;
use super::engine::WebEngine;

/// How the supervisor holds leases.
#[derive(Debug, Clone)]
pub struct SupervisorOptions {
    /// This process's name in the leases (unique among the processes).
    pub owner: String,
    /// How long a lease lasts without renewal (default 30 s): the takeover
    /// delay after a process dies.
    pub lease: Duration,
    /// How often channels are read and leases renewed (default a third of `lease`).
    pub every: Duration,
}

impl Default for SupervisorOptions {
    fn default() -> Self {
        let lease = Duration::from_secs(30);
        Self { owner: default_owner(), lease, every: lease / 3 }
    }
}

/// `host:pid:start`, unique per process.
pub fn default_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let started =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0);
    let host: String = host.trim().chars().take(64).collect();
    format!("{}:{}:{started}", if host.is_empty() { "host" } else { &host }, std::process::id())
}

/// The running supervisor; [`Supervisor::stop`] closes its sessions and
/// gives the leases back.
#[derive(Debug)]
pub struct Supervisor {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Supervisor {
    /// Starts supervising every `whatsapp-web` channel of `crm`'s store with `engine`.
    pub fn start(engine: WebEngine, crm: Crm, options: SupervisorOptions) -> Self {
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(run(engine, crm, options, rx));
        Self { stop, task }
    }

    /// Stops: closes the sessions, releases the leases, and waits.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }

    /// Stops without releasing the leases or closing anything gracefully:
    /// what a crash looks like to the other processes (tests).
    pub fn abandon(self) {
        self.task.abort();
    }
}

async fn run(engine: WebEngine, crm: Crm, options: SupervisorOptions, mut stop: watch::Receiver<bool>) {
    let mut held: HashSet<ChannelId> = HashSet::new();
    let mut last_renewal = tokio::time::Instant::now();
    loop {
        match tick(&engine, &crm, &options, &mut held).await {
            Ok(()) => last_renewal = tokio::time::Instant::now(),
            Err(e) => {
                tracing::warn!(error = %e, "whatsapp web: could not read channels or renew leases");
                // Unrenewed leases expire: another process may open the
                // sessions then, so this one must not keep them.
                if last_renewal.elapsed() >= options.lease {
                    for id in held.drain() {
                        engine.close(id).await;
                        engine.set_elsewhere(id, None);
                    }
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(options.every) => {}
            _ = stop.changed() => break,
        }
    }
    for id in held {
        engine.close(id).await;
        if let Err(e) = crm.store().release_channel_lease(id, &options.owner).await {
            tracing::warn!(channel = %id, error = %e, "whatsapp web: a lease was not released (it expires)");
        }
    }
}

/// Every channel of the kind, enabled or not.
async fn channels(crm: &Crm) -> Result<Vec<Channel>> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = crm.store().list_all_channels(after, 1000).await?;
        let last = page.last().map(|c| c.id);
        all.extend(page.into_iter().filter(|c| c.kind.as_str() == KIND));
        match last {
            Some(id) => after = Some(id),
            None => return Ok(all),
        }
    }
}

async fn tick(engine: &WebEngine, crm: &Crm, options: &SupervisorOptions, held: &mut HashSet<ChannelId>) -> Result<()> {
    let store = crm.store();
    let channels = channels(crm).await?;
    let wanted: HashMap<ChannelId, &Channel> = channels.iter().filter(|c| c.enabled).map(|c| (c.id, c)).collect();
    // Disabled or deleted: closed, lease given back.
    let gone: Vec<ChannelId> = held.iter().filter(|id| !wanted.contains_key(id)).copied().collect();
    for id in gone {
        held.remove(&id);
        engine.close(id).await;
        store.release_channel_lease(id, &options.owner).await.ok();
    }
    for (id, channel) in wanted {
        let mine = match store.acquire_channel_lease(id, &options.owner, options.lease).await {
            Ok(mine) => mine,
            Err(crm_core::Error::NotFound { .. }) => false,
            Err(e) => return Err(e),
        };
        if mine {
            held.insert(id);
            engine.set_elsewhere(id, None);
            engine.open(channel).await?;
        } else {
            if held.remove(&id) {
                tracing::warn!(channel = %id, "whatsapp web: another process holds this session's lease; closing it here");
                engine.close(id).await;
            }
            let owner = store.channel_lease_owner(id).await?;
            engine.set_elsewhere(id, owner);
        }
    }
    Ok(())
}
