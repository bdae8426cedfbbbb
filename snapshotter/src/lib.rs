//! Content store (sha256-addressed blobs) and overlay snapshots.
//!
//! Empty until its issue lands (see ARCHITECTURE.md).
