//! CNI: conflist loading, plugin execution, result cache, network namespaces.
//!
//! Empty until its issue lands (see ARCHITECTURE.md).
