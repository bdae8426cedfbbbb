//! Runtime handlers (Kubernetes RuntimeClass handlers, Docker's `--runtime`): the
//! built-in runtime the shim runs in-process, or an external OCI runtime binary.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The name of the runtime berth-shim runs in-process.
pub const BUILTIN_RUNTIME: &str = "berth";

/// The handlers a container may name, from berthd's `[runtimes]` and
/// `default_runtime`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeHandlers {
    /// Runtime state (berthd's `--state`): external runtimes' roots live under it.
    pub state: PathBuf,
    /// The handler used when a request names none.
    pub default: String,
    /// Configured handlers by name: an external runtime binary, or `None` for the
    /// built-in runtime.
    pub handlers: BTreeMap<String, Option<PathBuf>>,
}

impl RuntimeHandlers {
    /// Every runtime handler name a request may use: `berth` (the built-in runtime)
    /// and the configured entries.
    pub fn names(&self) -> Vec<String> {
        let mut names = vec![BUILTIN_RUNTIME.to_string()];
        names.extend(
            self.handlers
                .keys()
                .filter(|n| *n != BUILTIN_RUNTIME)
                .cloned(),
        );
        names
    }

    /// The handler a request naming `name` runs under (empty: the default) and the
    /// external runtime binary it calls (`None`: the built-in runtime, in the shim).
    pub fn resolve(&self, name: &str) -> Result<(String, Option<PathBuf>), String> {
        let name = if name.is_empty() {
            self.default.as_str()
        } else {
            name
        };
        match self.handlers.get(name) {
            Some(path) => Ok((name.to_string(), path.clone())),
            None if name == BUILTIN_RUNTIME => Ok((name.to_string(), None)),
            None => Err(format!(
                "unknown or invalid runtime name: {name} (configured: {})",
                self.names().join(", ")
            )),
        }
    }

    /// The state directory of an external runtime handler (its `--root`).
    pub fn root(&self, name: &str) -> PathBuf {
        self.state.join("runtimes").join(name)
    }
}
