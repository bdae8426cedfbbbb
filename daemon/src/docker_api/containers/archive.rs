//! `HEAD`, `GET` and `PUT /containers/{id}/archive?path=…`: a path's stat (in the
//! `X-Docker-Container-Path-Stat` header, base64 of its JSON), a tar of it, and a tar
//! extracted into a directory — what `docker cp` uses both ways.

use std::io::Read;
use std::sync::Arc;

use base64::Engine as _;
use berth_engine::archive::{self, ExtractOptions, PathStat};
use http_body_util::BodyExt;
use hyper::StatusCode;

use super::super::images::stream::{channel_body, ChannelWriter};
use super::super::{ApiError, ApiRequest, Reply};
use crate::Daemon;

const STAT_HEADER: &str = "x-docker-container-path-stat";

fn path(req: &ApiRequest) -> Result<String, ApiError> {
    match req.query("path") {
        Some(p) if !p.is_empty() => Ok(p.to_string()),
        _ => Err(ApiError::BadRequest("Path cannot be empty".into())),
    }
}

fn stat_header(reply: Reply, stat: &PathStat) -> Result<Reply, ApiError> {
    let json = serde_json::to_vec(stat).map_err(|e| ApiError::Internal(e.to_string()))?;
    reply.header_value(
        STAT_HEADER,
        &base64::engine::general_purpose::STANDARD.encode(json),
    )
}

pub async fn head(daemon: &Arc<Daemon>, id: &str, req: &ApiRequest) -> Result<Reply, ApiError> {
    let stat = archive::stat_path(&daemon.engine, id, &path(req)?).await?;
    stat_header(Reply::empty(StatusCode::OK), &stat)
}

pub async fn get(daemon: &Arc<Daemon>, id: &str, req: &ApiRequest) -> Result<Reply, ApiError> {
    let (tx, body) = channel_body(8);
    let stat = archive::read_archive(&daemon.engine, id, &path(req)?, move |_| {
        ChannelWriter::new(tx)
    })
    .await?;
    stat_header(Reply::stream("application/x-tar", body), &stat)
}

pub async fn put(daemon: &Arc<Daemon>, id: &str, req: &mut ApiRequest) -> Result<Reply, ApiError> {
    let path = path(req)?;
    let opts = ExtractOptions {
        no_overwrite_dir_non_dir: req.query_bool("noOverwriteDirNonDir")?,
        copy_uid_gid: req.query_bool("copyUIDGID")?,
    };
    let Some(mut body) = req.take_body() else {
        return Err(ApiError::BadRequest("the request has no body".into()));
    };
    // The body goes to the extracting thread through a bounded channel, its
    // frames (one socket read each) gathered into chunks of up to 1 MiB so the
    // thread is woken once per chunk.
    const FEED: usize = 1 << 20;
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(8);
    let pump = tokio::spawn(async move {
        let mut gathered = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return };
            if let Some(data) = frame.data_ref() {
                gathered.extend_from_slice(data);
                if gathered.len() >= FEED && tx.send(gathered.split().freeze()).await.is_err() {
                    return;
                }
            }
        }
        if !gathered.is_empty() {
            let _ = tx.send(gathered.split().freeze()).await;
        }
    });
    let reader = ChannelReader {
        rx,
        chunk: bytes::Bytes::new(),
    };
    let result = archive::extract(&daemon.engine, id, &path, Box::new(reader), opts).await;
    pump.abort();
    result?;
    Ok(Reply::empty(StatusCode::OK))
}

/// A blocking reader over the chunks of a request body.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    chunk: bytes::Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(c) => self.chunk = c,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk = self.chunk.slice(n..);
        Ok(n)
    }
}
