//! berthd: configuration, metadata store, wiring, Docker Engine API, metrics.
//!
//! Landed so far: the configuration file, the SQLite metadata store and the
//! one-daemon-per-root lock. The front doors (CRI, Docker API) come with their issues.

pub mod config;
pub mod lock;
pub mod store;
