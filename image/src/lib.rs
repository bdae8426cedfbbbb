//! Image references, registry client, image configs, save/load.
//!
//! Empty until its issue lands (see ARCHITECTURE.md).
