//! `Attach`: a validated request becomes a URL on the streaming server; the connection
//! attaches to the container's main process through the engine until the container
//! stops or the client detaches.

use std::io;

use berth_engine::{self as engine, AttachOptions};
use k8s_cri::v1 as cri;

use super::exec::validate_streams;
use super::remotecommand::{self, Options, Outcome, Terminal};
use super::server::Conn;
use super::StreamRequest;
use crate::containers::cri_record;
use crate::{Cri, CriError};

pub(crate) async fn attach(
    cri: &Cri,
    req: cri::AttachRequest,
) -> Result<cri::AttachResponse, CriError> {
    let engine = cri.engine("Attach")?;
    validate_streams(req.stdin, req.stdout, req.stderr, req.tty)?;
    let record = cri_record(&engine, &req.container_id)?;
    if !record.state.status.has_task() {
        return Err(CriError::FailedPrecondition(format!(
            "container {} is not running",
            req.container_id
        )));
    }
    let url = cri.streaming().url(StreamRequest::Attach(req))?;
    Ok(cri::AttachResponse { url })
}

pub(crate) async fn serve(cri: &Cri, req: cri::AttachRequest, conn: Conn) -> io::Result<()> {
    let opts = Options {
        stdin: req.stdin,
        stdout: req.stdout,
        stderr: req.stderr,
        tty: req.tty,
    };
    let Some(mut streams) = remotecommand::open(conn, opts).await? else {
        return Ok(());
    };
    let engine = match cri.engine("Attach") {
        Ok(e) => e,
        Err(e) => {
            streams.finish(Outcome::Failed(e.to_string())).await;
            return Ok(());
        }
    };
    let attach_opts = AttachOptions {
        stdin: req.stdin,
        stdout: req.stdout,
        stderr: req.stderr && !req.tty,
        logs: false,
    };
    let io = match engine::attach(&engine, &req.container_id, attach_opts).await {
        Ok(io) => io,
        Err(e) => {
            streams.finish(Outcome::Failed(e.to_string())).await;
            return Ok(());
        }
    };
    let terminal = Terminal::Container(req.container_id.clone());
    if remotecommand::pump(&engine, terminal, io, &mut streams).await {
        // The container's output ended: it stopped.
        streams
            .finish(Outcome::Exited {
                code: 0,
                command: Vec::new(),
            })
            .await;
    }
    // A client that went away simply detached; the container runs on.
    Ok(())
}
