//! Dockerfile parsing and the image builder.
//!
//! Empty until its issue lands (see ARCHITECTURE.md).
