//! `GetContainerEvents`: the engine's lifecycle changes of CRI containers as a server
//! stream, each with its pod's status and the statuses of the pod's containers, as
//! kubelet's evented PLEG reads them.
//!
//! The engine keeps a bounded backlog per subscriber (its broadcast channel). A reader
//! that falls further behind than that has lost events for good; rather than go on as if
//! nothing happened, the stream ends with `DATA_LOSS` saying how many were lost. kubelet's
//! evented PLEG treats any stream error by relisting every pod and subscribing again,
//! which is exactly what such a reader needs.

use std::collections::HashMap;
use std::sync::Arc;

use berth_engine::{ContainerEvent, ContainerEventKind, Engine};
use futures_util::StreamExt;
use k8s_cri::v1 as cri;
use tokio::sync::broadcast::error::RecvError;
use tonic::Status;

use super::EventStream;
use crate::containers::{self, missing};
use crate::sandbox::status::to_status;
use crate::{Cri, CriError};

pub(super) fn stream(cri: &Cri) -> Result<EventStream, CriError> {
    let engine = cri
        .inner
        .engine
        .clone()
        .ok_or_else(|| missing("GetContainerEvents"))?;
    let state = Reader {
        events: engine.subscribe(),
        engine,
        cri: cri.clone(),
        last: HashMap::new(),
        ended: false,
    };
    let stream = futures_util::stream::unfold(state, |mut r| async move {
        if r.ended {
            return None;
        }
        match r.next().await {
            Next::Event(event) => {
                let resp = r.response(event).await;
                Some((Ok(resp), r))
            }
            Next::Lost(n) => {
                r.ended = true;
                Some((Err(lost(n)), r))
            }
            Next::Closed => None,
        }
    });
    Ok(stream.boxed())
}

/// The error that ends the stream of a reader that missed `n` events.
fn lost(n: u64) -> Status {
    tracing::warn!(
        lost = n,
        "GetContainerEvents reader fell behind; ending its stream"
    );
    Status::data_loss(format!(
        "GetContainerEvents: this subscriber fell behind and {n} container events were \
         dropped; relist pods and containers (ListPodSandbox, ListContainers) and subscribe \
         again"
    ))
}

enum Next {
    Event(ContainerEvent),
    /// The reader fell behind the engine's backlog: this many events are gone.
    Lost(u64),
    /// The engine is gone.
    Closed,
}

struct Reader {
    events: tokio::sync::broadcast::Receiver<ContainerEvent>,
    engine: Arc<Engine>,
    cri: Cri,
    /// The last event sent per container, to drop repeats.
    last: HashMap<String, ContainerEventKind>,
    /// Set once the stream reported lost events: nothing follows an error.
    ended: bool,
}

impl Reader {
    /// The next event that changes something.
    async fn next(&mut self) -> Next {
        loop {
            match self.events.recv().await {
                Ok(e) => {
                    if self.last.get(&e.container_id) == Some(&e.kind) {
                        continue;
                    }
                    if e.kind == ContainerEventKind::Deleted {
                        self.last.remove(&e.container_id);
                    } else {
                        self.last.insert(e.container_id.clone(), e.kind);
                    }
                    return Next::Event(e);
                }
                Err(RecvError::Lagged(n)) => return Next::Lost(n),
                Err(RecvError::Closed) => return Next::Closed,
            }
        }
    }

    async fn response(&self, e: ContainerEvent) -> cri::ContainerEventResponse {
        let pod_sandbox_status = self
            .cri
            .inner
            .sandboxes
            .find(&e.sandbox_id)
            .ok()
            .flatten()
            .map(|r| to_status(&r));
        let mut containers_statuses = Vec::new();
        for id in containers::sandbox_containers(&self.engine, &e.sandbox_id).unwrap_or_default() {
            if let Ok(resp) = containers::status::container_status(&self.engine, &id, false) {
                containers_statuses.extend(resp.status);
            }
        }
        cri::ContainerEventResponse {
            container_id: e.container_id,
            container_event_type: event_type(e.kind) as i32,
            created_at: e.at,
            pod_sandbox_status,
            containers_statuses,
        }
    }
}

/// The CRI's name for an engine lifecycle event.
fn event_type(kind: ContainerEventKind) -> cri::ContainerEventType {
    match kind {
        ContainerEventKind::Created => cri::ContainerEventType::ContainerCreatedEvent,
        ContainerEventKind::Started => cri::ContainerEventType::ContainerStartedEvent,
        ContainerEventKind::Stopped => cri::ContainerEventType::ContainerStoppedEvent,
        ContainerEventKind::Deleted => cri::ContainerEventType::ContainerDeletedEvent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_events_are_data_loss_with_the_count() {
        let s = lost(7);
        assert_eq!(s.code(), tonic::Code::DataLoss);
        assert!(
            s.message().contains("7 container events"),
            "{}",
            s.message()
        );
    }
}
