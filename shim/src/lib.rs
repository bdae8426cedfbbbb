//! berth-shim: supervises a pod's containers over containerd's shim v2 Task API.
//!
//! Empty until its issue lands (see ARCHITECTURE.md).
