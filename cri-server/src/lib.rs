//! CRI v1 RuntimeService and ImageService.
//!
//! Empty until its issue lands (see ARCHITECTURE.md).
