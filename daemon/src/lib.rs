//! berthd: configuration, metadata store, wiring, Docker Engine API, metrics.
//!
//! Empty until its issue lands (see ARCHITECTURE.md).
