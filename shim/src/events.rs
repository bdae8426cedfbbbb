//! Publishing task events to containerd through its `-publish-binary`
//! (`containerd --address A publish --topic T --namespace N`, the event as a protobuf
//! `Any` on stdin), from one background thread so callers never wait on it.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;

use crate::reaper::Reaper;

/// The protobuf package of containerd's task events.
const EVENTS_PACKAGE: &str = "containerd.events";

/// The `Any` type URL of an event: its full protobuf name. All task events live in
/// the `containerd.events` package. Not `M::descriptor().full_name()`: building the
/// descriptors parses every .proto of the crate once, which left ~0.5 MiB of heap in
/// each shim.
fn type_url<M: Message>() -> String {
    format!("{EVENTS_PACKAGE}.{}", M::NAME)
}

/// Where events go.
#[derive(Clone)]
pub struct Publisher {
    tx: Option<Sender<(&'static str, Any)>>,
}

impl Publisher {
    /// A publisher running `binary` against containerd at `address` in `namespace`;
    /// without a binary, events are dropped (the shim runs without containerd).
    pub fn start(
        binary: Option<PathBuf>,
        address: String,
        namespace: String,
        reaper: Arc<Reaper>,
    ) -> std::io::Result<Publisher> {
        let Some(binary) = binary else {
            return Ok(Publisher { tx: None });
        };
        let (tx, rx) = channel::<(&'static str, Any)>();
        std::thread::Builder::new()
            .name("events".into())
            .stack_size(128 * 1024)
            .spawn(move || {
                for (topic, any) in rx {
                    if let Err(e) = publish(&binary, &address, &namespace, &reaper, topic, &any) {
                        tracing::warn!(topic, "publishing event failed: {e}");
                    }
                }
            })?;
        Ok(Publisher { tx: Some(tx) })
    }

    /// Queues `event` for `topic`.
    pub fn send<M: Message>(&self, topic: &'static str, event: &M) {
        let Some(tx) = &self.tx else { return };
        let value = match event.write_to_bytes() {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(topic, "encoding event: {e}");
                return;
            }
        };
        let mut any = Any::new();
        any.type_url = type_url::<M>();
        any.value = value;
        let _ = tx.send((topic, any));
    }
}

fn publish(
    binary: &PathBuf,
    address: &str,
    namespace: &str,
    reaper: &Reaper,
    topic: &str,
    any: &Any,
) -> anyhow::Result<()> {
    let data = any.write_to_bytes()?;
    let mut cmd = Command::new(binary);
    cmd.args([
        "--address",
        address,
        "publish",
        "--topic",
        topic,
        "--namespace",
        namespace,
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let (mut child, rx) = reaper.spawn(&mut cmd)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&data)?;
    }
    let mut err = Vec::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_end(&mut err);
    }
    let code = rx.recv()?;
    if code != 0 {
        anyhow::bail!(
            "{} exited with {code}: {}",
            binary.display(),
            String::from_utf8_lossy(&err).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use containerd_shim_protos::events::task::{
        TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskPaused, TaskResumed,
        TaskStart,
    };
    use containerd_shim_protos::protobuf::MessageFull;

    use super::type_url;

    #[test]
    fn type_urls_are_the_full_protobuf_names() {
        fn check<M: MessageFull>() {
            assert_eq!(type_url::<M>(), M::descriptor().full_name());
        }
        check::<TaskCreate>();
        check::<TaskStart>();
        check::<TaskDelete>();
        check::<TaskExit>();
        check::<TaskExecAdded>();
        check::<TaskExecStarted>();
        check::<TaskPaused>();
        check::<TaskResumed>();
    }
}
