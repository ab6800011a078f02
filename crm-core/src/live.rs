//! Live events in process: one tail of the event log, fanned out to any
//! number of subscribers through a bounded broadcast channel.
//!
//! Every change already writes its [`Event`] to the log in its own
//! transaction, whichever process made it (an API request, the
//! dispatcher in a worker process, an inbound webhook). The outbox hands
//! each event to *one* worker of a consumer, which suits work but not a
//! screen: every open dashboard of every process wants every event of its
//! account. So a [`LiveFeed`] reads the log itself ([`EventStore::read_all_events`]
//! after a cursor, every [`LiveOptions::poll`] while someone listens) and
//! publishes each new event once to its subscribers.
//!
//! - **Bounded.** The channel keeps [`LiveOptions::capacity`] events; a
//!   subscriber that falls further behind gets [`Live::Lagged`] with the
//!   number it missed and should reload what it shows (a web page:
//!   re-fetch) — a slow reader never holds memory or slows the others.
//! - **Late commits.** Event ids are UUIDv7, minted before their
//!   transaction commits, so an event may appear in the log after a newer
//!   one. Each poll reads again from [`LiveOptions::overlap`] before the
//!   newest event seen and skips the ids it already published (a bounded
//!   set), so an event committed up to that long after its id was minted
//!   is still published once. Later than that it is in the log, not in the
//!   feed (a page shows it when it next loads).
//! - **Idle.** With no subscriber the tail does not read; it only moves
//!   its cursor to the present, so a first subscriber sees events from
//!   then on. The task ends when the last clone of the feed is dropped.
//! - **Times** are the system's: event ids are UUIDv7 minted from the
//!   system clock whatever [`Clock`](crate::Clock) the service runs on.

use chrono::{DateTime, Utc};
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::broadcast;

use crate::{Event, EventId, EventStore};

/// How a [`LiveFeed`] reads and buffers.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Events the channel keeps for slow subscribers (default 1,024).
    pub capacity: usize,
    /// How often the log is read while someone listens (default 300 ms).
    pub poll: Duration,
    /// Events read per query (default 500).
    pub batch: u32,
    /// How far back each read starts before the newest event seen, for
    /// late commits (default 2 s).
    pub overlap: Duration,
}

impl Default for LiveOptions {
    fn default() -> Self {
        Self { capacity: 1024, poll: Duration::from_millis(300), batch: 500, overlap: Duration::from_secs(2) }
    }
}

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq)]
pub enum Live {
    /// The next event.
    Event(Arc<Event>),
    /// The subscriber fell this many events behind and they are gone:
    /// reload what depends on them.
    Lagged(u64),
    /// The feed stopped (it was dropped).
    Closed,
}

/// One subscriber of a [`LiveFeed`].
#[derive(Debug)]
pub struct LiveReceiver(broadcast::Receiver<Arc<Event>>);

impl LiveReceiver {
    /// Waits for the next thing to report.
    pub async fn next(&mut self) -> Live {
        match self.0.recv().await {
            Ok(e) => Live::Event(e),
            Err(broadcast::error::RecvError::Lagged(n)) => Live::Lagged(n),
            Err(broadcast::error::RecvError::Closed) => Live::Closed,
        }
    }
}

#[derive(Debug)]
struct Shared {
    sender: broadcast::Sender<Arc<Event>>,
}

/// The tail of the event log, shared by every subscriber of the process.
/// Cheap to clone; the tail runs while a clone lives.
#[derive(Debug, Clone)]
pub struct LiveFeed {
    shared: Arc<Shared>,
}

/// The smallest UUIDv7 of millisecond `at`: every id minted at or after
/// `at` sorts after it.
fn floor_id(at: DateTime<Utc>) -> EventId {
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    bytes[6] = 0x70;
    bytes[8] = 0x80;
    EventId::from_uuid(uuid::Uuid::from_bytes(bytes))
}

/// The millisecond a UUIDv7 event id was minted at.
fn id_time(id: EventId) -> Option<DateTime<Utc>> {
    let b = id.into_uuid().into_bytes();
    let ms = b[..6].iter().fold(0i64, |acc, x| (acc << 8) | i64::from(*x));
    DateTime::from_timestamp_millis(ms)
}

/// Ids already published, bounded (oldest forgotten first).
#[derive(Debug, Default)]
struct Seen {
    set: HashSet<EventId>,
    order: VecDeque<EventId>,
}

impl Seen {
    const MAX: usize = 16 * 1024;

    /// Whether `id` is new (and remembers it).
    fn first(&mut self, id: EventId) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > Self::MAX
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

impl LiveFeed {
    /// Starts the tail of `store`'s log (on the current tokio runtime),
    /// reading from now on.
    pub fn start(store: Arc<dyn EventStore>, options: LiveOptions) -> Self {
        let (sender, _) = broadcast::channel(options.capacity.max(1));
        let shared = Arc::new(Shared { sender });
        let weak = Arc::downgrade(&shared);
        // From the moment of the call, not the task's first turn (which may come later).
        tokio::spawn(tail(weak, store, options, Utc::now()));
        Self { shared }
    }

    /// A new subscriber: it receives the events published from now on.
    pub fn subscribe(&self) -> LiveReceiver {
        LiveReceiver(self.shared.sender.subscribe())
    }

    /// How many subscribers listen now.
    pub fn subscribers(&self) -> usize {
        self.shared.sender.receiver_count()
    }
}

async fn tail(shared: Weak<Shared>, store: Arc<dyn EventStore>, options: LiveOptions, started: DateTime<Utc>) {
    let overlap = chrono::Duration::from_std(options.overlap).unwrap_or(chrono::Duration::seconds(2));
    let mut newest = started;
    // Nothing from before someone listened is published.
    let mut listening_since = newest;
    let mut seen = Seen::default();
    loop {
        tokio::time::sleep(options.poll).await;
        let Some(shared) = shared.upgrade() else { return };
        if shared.sender.receiver_count() == 0 {
            newest = newest.max(Utc::now());
            listening_since = newest;
            continue;
        }
        let mut after = floor_id((newest - overlap).max(listening_since));
        loop {
            let events = match store.read_all_events(Some(after), options.batch).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(error = %e, "live feed: the event log could not be read; trying again");
                    break;
                }
            };
            let full = events.len() >= options.batch as usize;
            for event in events {
                after = event.id;
                if let Some(at) = id_time(event.id) {
                    newest = newest.max(at);
                }
                if seen.first(event.id) {
                    // No receiver left is fine: nobody listens to this one.
                    let _ = shared.sender.send(Arc::new(event));
                }
            }
            if !full {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Account, AccountStore, EventType, MemoryStore};

    fn quick(capacity: usize) -> LiveOptions {
        LiveOptions { capacity, poll: Duration::from_millis(10), ..LiveOptions::default() }
    }

    async fn account(store: &MemoryStore) -> Event {
        let a = Account::new("A", Utc::now()).unwrap();
        let e = Event::new(a.id, EventType::ACCOUNT_CREATED, &serde_json::json!({}), Utc::now());
        store.create_account(&a, &e).await.unwrap();
        e
    }

    async fn next(rx: &mut LiveReceiver) -> Live {
        tokio::time::timeout(Duration::from_secs(5), rx.next()).await.expect("something arrives")
    }

    #[test]
    fn floor_ids_sort_before_every_id_of_their_millisecond() {
        let now = Utc::now();
        let id = EventId::new();
        assert!(floor_id(now - chrono::Duration::milliseconds(5)) < id);
        assert!(floor_id(now + chrono::Duration::seconds(5)) > id);
        let t = id_time(id).unwrap();
        assert!((t - now).num_milliseconds().abs() < 1000);
        assert_eq!(id_time(floor_id(t)), Some(t));
    }

    #[tokio::test]
    async fn every_subscriber_gets_each_new_event_once_and_old_ones_never() {
        let store = MemoryStore::new();
        let before = account(&store).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let feed = LiveFeed::start(Arc::new(store.clone()), quick(64));
        let (mut one, mut two) = (feed.subscribe(), feed.subscribe());
        assert_eq!(feed.subscribers(), 2);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let e1 = account(&store).await;
        let e2 = account(&store).await;
        for rx in [&mut one, &mut two] {
            for expected in [&e1, &e2] {
                match next(rx).await {
                    Live::Event(e) => assert_eq!(e.id, expected.id, "in log order, the earlier one not replayed"),
                    other => panic!("{other:?}"),
                }
            }
        }
        assert_ne!(before.id, e1.id);
        // Nothing more: the overlap re-reads are not published again.
        assert!(tokio::time::timeout(Duration::from_millis(200), one.next()).await.is_err());
    }

    #[tokio::test]
    async fn a_slow_subscriber_is_told_it_lagged_and_the_feed_stops_with_its_last_clone() {
        let store = MemoryStore::new();
        let feed = LiveFeed::start(Arc::new(store.clone()), quick(2));
        let mut rx = feed.subscribe();
        let mut last = None;
        for _ in 0..6 {
            last = Some(account(&store).await);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(matches!(next(&mut rx).await, Live::Lagged(n) if n >= 1), "it missed some");
        // After the lag it reads on from what the channel still holds.
        let mut got = Vec::new();
        while let Ok(Live::Event(e)) = tokio::time::timeout(Duration::from_millis(100), rx.next()).await {
            got.push(e.id);
        }
        assert_eq!(got.last(), last.as_ref().map(|e| &e.id), "the newest is still there");
        drop(feed);
        assert_eq!(next(&mut rx).await, Live::Closed);
    }
}
