//! Content store (sha256-addressed blobs) and overlay snapshots.
//!
//! - [`content`]: blobs under `<root>/content/blobs/sha256/<hex>`, each written to a temp
//!   file, verified while written, fsynced and renamed; garbage collection of
//!   unreferenced blobs.
//! - [`apply`]: streams a (decompressed) layer tar into a directory, turning whiteouts
//!   into overlay's form and refusing every entry that would land outside it.
//! - [`changes`]: a writable snapshot's changes (`docker diff`) read from its upper.
//! - [`diff`]: a writable snapshot's upper directory written back as a layer tar
//!   (whiteouts and opaque directories in the OCI form).
//! - [`snapshots`]: overlay snapshots keyed by chain ID (`prepare`, `view`, `commit`,
//!   `remove`, `usage`, `diff_size`, `list`) and the mounts that give containers their root
//!   filesystems, including images with more layers than one page of mount options holds.
//! - [`xattrs`]: the extended attributes tars carry (`SCHILY.xattr.` PAX records).

pub mod apply;
pub mod changes;
pub mod content;
pub mod diff;
pub mod digest;
pub mod mount;
mod safepath;
pub mod snapshots;
pub mod writers;
pub mod xattrs;

pub use apply::{apply_layer, ApplyError, ApplyOptions, ApplyStats};
pub use content::{BlobInfo, ContentError, ContentStore, Ingest};
pub use digest::{Digest, DigestError};
pub use mount::{Mount, MountError};
pub use snapshots::{Kind, SnapshotError, SnapshotInfo, Snapshotter, Usage};
