//! Container logs as the shim writes them (the CRI format, or Docker's json-file
//! format with rotation): the settings a container keeps, reading them back.

pub mod cri_log;
pub mod files;
pub mod settings;
pub mod timestamp;
