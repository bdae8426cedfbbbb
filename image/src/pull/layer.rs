//! One layer: bytes from the registry (or a blob already stored) → tee into the content
//! store (hashed, size-checked) → decompress → hash the tar (diff ID) → unpack, all in
//! one pass on a blocking thread while the async side feeds it chunks as they arrive.

use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use berth_snapshotter::{
    apply_layer, ApplyError, ApplyOptions, BlobInfo, ContentError, ContentStore, Digest, Ingest,
};
use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use super::{LayerState, Progress, ProgressFn};
use crate::manifest::{layer_compression, Compression, Descriptor};
use crate::reference::Reference;
use crate::registry::{Client, RegistryError};

/// Why one layer failed.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("download interrupted: {0}")]
    Download(String),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("decompressing: {0}")]
    Decompress(io::Error),
    #[error("uncompressed content has digest {actual}, but the config's diff_id is {expected}")]
    DiffId { expected: Digest, actual: Digest },
    #[error("unsupported layer: {0}")]
    MediaType(String),
    #[error("unpack thread failed: {0}")]
    Thread(String),
}

pub(super) struct Job {
    pub client: Arc<Client>,
    pub reference: Reference,
    pub desc: Descriptor,
    pub diff_id: Digest,
    pub content: ContentStore,
    pub dest: PathBuf,
    pub progress: Option<ProgressFn>,
}

/// A failure seen below the decompressor, kept so it is reported instead of the
/// decompressor's or tar reader's vaguer view of it.
type Failure = Arc<Mutex<Option<LayerError>>>;

impl Job {
    pub(super) async fn run(self) -> Result<(), LayerError> {
        let compression = layer_compression(&self.desc.media_type)
            .map_err(|e| LayerError::MediaType(e.to_string()))?;
        if self.content.contains(&self.desc.digest) {
            let file = self.content.read(&self.desc.digest)?;
            let desc = self.desc.clone();
            let (dest, diff_id, progress) = (
                self.dest.clone(),
                self.diff_id.clone(),
                self.progress.clone(),
            );
            return tokio::task::spawn_blocking(move || {
                unpack(
                    Box::new(file),
                    None,
                    compression,
                    &desc,
                    &diff_id,
                    &dest,
                    progress,
                    LayerState::Unpacking,
                )
            })
            .await
            .map_err(|e| LayerError::Thread(e.to_string()))?;
        }
        let resp = self.client.get_blob(&self.reference, &self.desc).await?;
        let ingest = self.content.ingest(Some(BlobInfo {
            digest: self.desc.digest.clone(),
            size: self.desc.size,
        }))?;
        let (tx, rx) = mpsc::channel::<Result<Bytes, String>>(64);
        let desc = self.desc.clone();
        let (dest, diff_id, progress) = (
            self.dest.clone(),
            self.diff_id.clone(),
            self.progress.clone(),
        );
        let worker = tokio::task::spawn_blocking(move || {
            let reader = ChannelReader {
                rx,
                current: Bytes::new(),
            };
            unpack(
                Box::new(reader),
                Some(ingest),
                compression,
                &desc,
                &diff_id,
                &dest,
                progress,
                LayerState::Downloading,
            )
        });
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let msg = chunk.map_err(|e| {
                let mut s = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(inner) = src {
                    s.push_str(&format!(": {inner}"));
                    src = inner.source();
                }
                s
            });
            let stop = msg.is_err();
            if tx.send(msg).await.is_err() || stop {
                break; // the worker stopped (it has the error) or the download failed
            }
        }
        drop(tx);
        worker
            .await
            .map_err(|e| LayerError::Thread(e.to_string()))?
    }
}

struct ChannelReader {
    rx: mpsc::Receiver<Result<Bytes, String>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(msg)) => {
                    return Err(io::Error::new(io::ErrorKind::ConnectionAborted, msg))
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// Counts, stores and reports the compressed bytes as they pass.
struct Tee {
    inner: Box<dyn Read + Send>,
    ingest: Option<Ingest>,
    failure: Failure,
    done: u64,
    reported: u64,
    layer: Digest,
    total: u64,
    state: LayerState,
    progress: Option<ProgressFn>,
}

impl Read for Tee {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => {
                let msg = e.to_string();
                set_failure(&self.failure, LayerError::Download(msg));
                return Err(e);
            }
        };
        if let Some(ingest) = &mut self.ingest {
            if let Err(e) = ingest.write_all_checked(&buf[..n]) {
                let msg = e.to_string();
                set_failure(&self.failure, LayerError::Content(e));
                return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
            }
        }
        self.done += n as u64;
        if self.done - self.reported >= 4 << 20 {
            self.reported = self.done;
            if let Some(p) = &self.progress {
                p(&Progress {
                    layer: self.layer.clone(),
                    done: self.done,
                    total: self.total,
                    state: self.state,
                });
            }
        }
        Ok(n)
    }
}

fn set_failure(slot: &Failure, e: LayerError) {
    let mut g = slot.lock().unwrap_or_else(|p| p.into_inner());
    if g.is_none() {
        *g = Some(e);
    }
}

fn take_failure(slot: &Failure) -> Option<LayerError> {
    slot.lock().unwrap_or_else(|p| p.into_inner()).take()
}

enum Decoder<R: BufRead> {
    Plain(R),
    Gzip(Box<flate2::bufread::MultiGzDecoder<R>>),
    Zstd(zstd::stream::read::Decoder<'static, R>),
}

impl<R: BufRead> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(r) => r.read(buf),
            Decoder::Zstd(r) => r.read(buf),
        }
    }
}

impl<R: BufRead> Decoder<R> {
    fn into_inner(self) -> R {
        match self {
            Decoder::Plain(r) => r,
            Decoder::Gzip(r) => r.into_inner(),
            Decoder::Zstd(r) => r.finish(),
        }
    }
}

struct HashReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[allow(clippy::too_many_arguments)]
fn unpack(
    source: Box<dyn Read + Send>,
    ingest: Option<Ingest>,
    compression: Compression,
    desc: &Descriptor,
    diff_id: &Digest,
    dest: &std::path::Path,
    progress: Option<ProgressFn>,
    state: LayerState,
) -> Result<(), LayerError> {
    let failure: Failure = Arc::new(Mutex::new(None));
    let tee = Tee {
        inner: source,
        ingest,
        failure: failure.clone(),
        done: 0,
        reported: 0,
        layer: desc.digest.clone(),
        total: desc.size,
        state,
        progress: progress.clone(),
    };
    let buffered = BufReader::with_capacity(1 << 20, tee);
    let decoder = match compression {
        Compression::None => Decoder::Plain(buffered),
        Compression::Gzip => {
            Decoder::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(buffered)))
        }
        Compression::Zstd => Decoder::Zstd(
            zstd::stream::read::Decoder::with_buffer(buffered).map_err(LayerError::Decompress)?,
        ),
    };
    let mut hashed = HashReader {
        inner: decoder,
        hasher: Sha256::new(),
    };
    let applied = apply_layer(&mut hashed, dest, &ApplyOptions::default());
    if let Some(f) = take_failure(&failure) {
        return Err(f);
    }
    applied?;
    let actual_diff = Digest::from_hasher(hashed.hasher);
    let mut tee = hashed.inner.into_inner().into_inner();
    // Whatever follows the compressed stream still counts for the blob's digest.
    let mut sink = [0u8; 64 * 1024];
    loop {
        match tee.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(take_failure(&failure).unwrap_or(LayerError::Download(e.to_string())))
            }
        }
    }
    if let Some(ingest) = tee.ingest.take() {
        ingest.commit()?;
    }
    if &actual_diff != diff_id {
        return Err(LayerError::DiffId {
            expected: diff_id.clone(),
            actual: actual_diff,
        });
    }
    if let Some(p) = &progress {
        p(&Progress {
            layer: desc.digest.clone(),
            done: tee.done,
            total: desc.size,
            state: LayerState::Done,
        });
    }
    Ok(())
}

/// Unpacks a layer already in the content store into `dest`, checking its diff ID.
pub(crate) fn unpack_stored(
    content: &ContentStore,
    desc: &Descriptor,
    diff_id: &Digest,
    dest: &std::path::Path,
) -> Result<(), LayerError> {
    let compression =
        layer_compression(&desc.media_type).map_err(|e| LayerError::MediaType(e.to_string()))?;
    let file = content.read(&desc.digest)?;
    unpack(
        Box::new(file),
        None,
        compression,
        desc,
        diff_id,
        dest,
        None,
        LayerState::Unpacking,
    )
}
