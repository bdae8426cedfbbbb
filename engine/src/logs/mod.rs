//! Container logs in the CRI format, as the shim writes them: reading them back.

pub mod cri_log;
pub mod timestamp;
