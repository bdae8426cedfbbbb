//! berth-shim: supervises a pod's containers over containerd's shim v2 Task API.
//!
//! The binary's `start` bootstraps a detached shim per pod ([`bootstrap`]); the serving
//! shim reaps its children ([`reaper`]), runs containers through an OCI runtime
//! ([`backend`]), owns their stdio and CRI logs ([`stdio`], [`logfile`], [`logtarget`]), records exits
//! durably ([`exit_record`]) and answers the Task API ([`task::service`]).

pub mod backend;
pub mod bootstrap;
pub mod events;
pub mod exit_record;
pub mod frame;
pub mod logfile;
pub mod logtarget;
pub mod mount;
pub mod reaper;
pub mod serve;
pub mod server;
pub mod stdio;
pub mod task;
