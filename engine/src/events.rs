//! The engine's event log: every container's lifecycle and every image operation, as
//! Docker's `/events` reports them, neutral of any wire format. A bounded ring keeps
//! the latest for readers asking for the past (`since`); a broadcast carries the rest.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::record::ContainerRecord;

/// How many past events the ring keeps (Docker keeps 256; berth a little more).
pub const RING: usize = 1024;

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Container,
    Image,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Container => "container",
            EventType::Image => "image",
        }
    }
}

/// One event: `action` on the object `actor_id` (a container id, an image id or
/// reference), with its attributes (a container's name, image and labels; an exit
/// code, a signal…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventType,
    pub action: String,
    pub actor_id: String,
    pub attributes: BTreeMap<String, String>,
    /// Unix nanoseconds.
    pub time_nano: i64,
}

/// The ring of past events and the broadcast of new ones. Both hold the one copy of
/// each event (a health check every second per container makes three).
pub struct EventLog {
    ring: Mutex<VecDeque<Arc<Event>>>,
    tx: tokio::sync::broadcast::Sender<Arc<Event>>,
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog {
            ring: Mutex::new(VecDeque::with_capacity(RING)),
            tx: tokio::sync::broadcast::channel(RING).0,
        }
    }
}

impl EventLog {
    /// Records `event` and hands it to every subscriber.
    pub fn publish(&self, event: Event) {
        tracing::debug!(
            kind = event.kind.as_str(),
            action = %event.action,
            actor = %event.actor_id,
            "event"
        );
        // Under the ring's lock, so that a subscriber sees each event once: either in
        // its copy of the ring or on its receiver.
        let event = Arc::new(event);
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() == RING {
            ring.pop_front();
        }
        ring.push_back(Arc::clone(&event));
        let _ = self.tx.send(event);
    }

    /// The past events still in the ring, and a receiver of every later one.
    pub fn subscribe(
        &self,
    ) -> (
        Vec<Arc<Event>>,
        tokio::sync::broadcast::Receiver<Arc<Event>>,
    ) {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        (ring.iter().cloned().collect(), self.tx.subscribe())
    }

    /// A container event with Docker's attributes: the container's labels, its image
    /// and name, then `extra` (which wins).
    pub fn container(
        &self,
        record: &ContainerRecord,
        action: &str,
        extra: impl IntoIterator<Item = (String, String)>,
    ) {
        let mut attributes = record.labels.clone();
        attributes.insert("image".into(), record.image.clone());
        attributes.insert("name".into(), record.name.clone());
        attributes.extend(extra);
        self.publish(Event {
            kind: EventType::Container,
            action: action.to_string(),
            actor_id: record.id.clone(),
            attributes,
            time_nano: crate::unix_nanos(),
        });
    }

    /// An image event: `actor` is the image's id or the reference acted on; `name`
    /// the reference (Docker's `name` attribute), when there is one.
    pub fn image(&self, action: &str, actor: &str, name: Option<&str>) {
        let mut attributes = BTreeMap::new();
        if let Some(name) = name {
            attributes.insert("name".to_string(), name.to_string());
        }
        self.publish(Event {
            kind: EventType::Image,
            action: action.to_string(),
            actor_id: actor.to_string(),
            attributes,
            time_nano: crate::unix_nanos(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: i64) -> Event {
        Event {
            kind: EventType::Image,
            action: "pull".into(),
            actor_id: format!("img{n}"),
            attributes: BTreeMap::new(),
            time_nano: n,
        }
    }

    #[test]
    fn the_ring_keeps_the_latest_and_a_subscriber_sees_each_event_once() {
        let log = EventLog::default();
        for n in 0..(RING as i64 + 5) {
            log.publish(event(n));
        }
        let (past, mut rx) = log.subscribe();
        assert_eq!(past.len(), RING);
        assert_eq!(past[0].time_nano, 5);
        log.publish(event(9999));
        assert_eq!(rx.try_recv().map(|e| e.time_nano).ok(), Some(9999));
        assert!(rx.try_recv().is_err());
    }
}
