//! The unpacked size of an image's layers, as Docker reports an image's size: measured
//! on the committed snapshots when an image is stored, and for the records of an older
//! berth, which did not keep it, when berthd opens the store.

use berth_snapshotter::{Digest, SnapshotError, Snapshotter};

use super::{ImageStore, StoreError};

/// The unpacked size of each layer of an image with `diff_ids`, measured on their
/// committed snapshots ([`Snapshotter::diff_size`]).
pub fn diff_sizes(snapshots: &Snapshotter, diff_ids: &[Digest]) -> Result<Vec<u64>, SnapshotError> {
    berth_snapshotter::digest::chain_ids(diff_ids)
        .iter()
        .map(|chain| snapshots.diff_size(&chain.to_string()))
        .collect()
}

impl ImageStore {
    /// Measures the unpacked layer sizes of records that lack them (written before
    /// berth kept them) on their snapshots and stores them. A record whose snapshots
    /// are missing keeps none and is logged. Returns how many records were updated.
    pub fn backfill_diff_sizes(&self, snapshots: &Snapshotter) -> Result<usize, StoreError> {
        let mut updated = 0;
        for rec in self.list()?.into_iter().filter(|r| r.diff_sizes.is_none()) {
            let sizes = match diff_sizes(snapshots, &rec.diff_ids) {
                Ok(sizes) => sizes,
                Err(e) => {
                    tracing::warn!(image = %rec.name, error = %e,
                        "cannot measure the unpacked size of the image's layers; its size stays unknown (pull it again to fix)");
                    continue;
                }
            };
            let done = self.transaction("recording layer sizes", |tx| {
                let Some(json) = Self::read(tx, &rec.name)
                    .map_err(self.sql(format!("reading image {:?}", rec.name)))?
                else {
                    return Ok(false); // removed meanwhile
                };
                let mut now = self.decode(&rec.name, &json)?;
                if now.diff_sizes.is_some() || now.diff_ids != rec.diff_ids {
                    return Ok(false); // rewritten meanwhile
                }
                now.diff_sizes = Some(sizes);
                self.write(tx, &now)?;
                Ok(true)
            })?;
            updated += usize::from(done);
        }
        Ok(updated)
    }
}
