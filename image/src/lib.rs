//! Image references, registry client, image configs, the pull pipeline, the image store.
//!
//! - [`reference`]: Docker-style reference parsing and normalisation.
//! - [`manifest`], [`config`]: manifests, indexes, platform selection, image configs.
//! - [`registry`]: OCI distribution v2 client (auth, mirrors, TLS, retries).
//! - [`pull`]: resolve → manifest → config → layers downloaded, verified and unpacked
//!   concurrently as they arrive → image record committed last.
//! - [`store`]: image records (name → manifest, config, chain ID).

pub mod archive;
pub mod config;
pub mod import;
pub mod manifest;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registry;
pub mod resolve;
pub mod store;

pub use config::ImageConfig;
pub use manifest::Platform;
pub use pull::{Progress, PullError, PullOptions, Puller};
pub use reference::Reference;
pub use registry::{Client, RegistryConfig, RegistryError};
pub use store::{ImageRecord, ImageStore};
