//! `GetContainerEvents`: the engine's lifecycle changes of CRI containers as a server
//! stream, each with its pod's status and the statuses of the pod's containers, as
//! kubelet's evented PLEG reads them.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::StreamExt;
use k8s_cri::v1 as cri;
use tokio::sync::broadcast::error::RecvError;

use super::EventStream;
use crate::engine::{missing, ContainerEngine, ContainerEvent};
use crate::sandbox::status::to_status;
use crate::{Cri, CriError};

pub(super) fn stream(cri: &Cri) -> Result<EventStream, CriError> {
    let engine = cri
        .inner
        .engine
        .clone()
        .ok_or_else(|| missing("GetContainerEvents"))?;
    let state = Reader {
        events: engine.events(),
        engine,
        cri: cri.clone(),
        last: HashMap::new(),
    };
    let stream = futures_util::stream::unfold(state, |mut r| async move {
        let event = r.next().await?;
        let resp = r.response(event).await;
        Some((Ok(resp), r))
    });
    Ok(stream.boxed())
}

struct Reader {
    events: tokio::sync::broadcast::Receiver<ContainerEvent>,
    engine: Arc<dyn ContainerEngine>,
    cri: Cri,
    /// The last event sent per container, to drop repeats.
    last: HashMap<String, cri::ContainerEventType>,
}

impl Reader {
    /// The next event that changes something; `None` once the engine is gone.
    async fn next(&mut self) -> Option<ContainerEvent> {
        loop {
            match self.events.recv().await {
                Ok(e) => {
                    if self.last.get(&e.container_id) == Some(&e.kind) {
                        continue;
                    }
                    if e.kind == cri::ContainerEventType::ContainerDeletedEvent {
                        self.last.remove(&e.container_id);
                    } else {
                        self.last.insert(e.container_id.clone(), e.kind);
                    }
                    return Some(e);
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "GetContainerEvents reader fell behind");
                }
                Err(RecvError::Closed) => return None,
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
        for id in self
            .engine
            .sandbox_containers(&e.sandbox_id)
            .await
            .unwrap_or_default()
        {
            if let Ok(resp) = self.engine.status(&id, false).await {
                containers_statuses.extend(resp.status);
            }
        }
        cri::ContainerEventResponse {
            container_id: e.container_id,
            container_event_type: e.kind as i32,
            created_at: e.at,
            pod_sandbox_status,
            containers_statuses,
        }
    }
}
