//! End-to-end tests against real berth binaries, run as root.
//!
//! The tests live in `tests/`; this library holds what they share.

/// Fails the calling test with a clear message unless it runs as root.
///
/// Root-only tests must never pass silently on a machine where they cannot run.
pub fn require_root() {
    berth_fixtures::require_root();
}
