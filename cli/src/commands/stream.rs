//! Docker's multiplexed stream (logs, attach): 8-byte headers `[stream, 0, 0, 0,
//! len u32 BE]` then the payload. Chunks of the HTTP body may split frames anywhere.

use std::io::Write;

use http_body_util::BodyExt;

/// Splits a multiplexed stream into stdout and stderr writes.
#[derive(Default)]
pub struct Demux {
    buf: Vec<u8>,
}

impl Demux {
    /// Feeds bytes; calls `out(stream, payload)` for each whole frame (1 stdout, 2
    /// stderr, 0 stdin).
    pub fn feed(&mut self, bytes: &[u8], out: &mut dyn FnMut(u8, &[u8])) {
        self.buf.extend_from_slice(bytes);
        let mut at = 0;
        while self.buf.len() - at >= 8 {
            let h = &self.buf[at..at + 8];
            let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
            if self.buf.len() - at - 8 < len {
                break;
            }
            out(h[0], &self.buf[at + 8..at + 8 + len]);
            at += 8 + len;
        }
        self.buf.drain(..at);
    }
}

/// Copies a logs body to this process's stdout/stderr as it arrives: demultiplexed,
/// or raw for a TTY container.
pub async fn copy_logs(mut body: hyper::body::Incoming, tty: bool) -> anyhow::Result<()> {
    let mut demux = Demux::default();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        if tty {
            let mut o = std::io::stdout().lock();
            o.write_all(data)?;
            o.flush()?;
            continue;
        }
        demux.feed(data, &mut |stream, payload| {
            if stream == 2 {
                let mut e = std::io::stderr().lock();
                let _ = e.write_all(payload);
            } else {
                let mut o = std::io::stdout().lock();
                let _ = o.write_all(payload);
                let _ = o.flush();
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![stream, 0, 0, 0];
        v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn frames_split_anywhere_are_reassembled() {
        let mut all = frame(1, b"hello\n");
        all.extend(frame(2, b"oops\n"));
        all.extend(frame(1, b""));
        all.extend(frame(1, b"bye\n"));
        for cut in 0..all.len() {
            let mut d = Demux::default();
            let mut got: Vec<(u8, Vec<u8>)> = Vec::new();
            d.feed(&all[..cut], &mut |s, p| got.push((s, p.to_vec())));
            d.feed(&all[cut..], &mut |s, p| got.push((s, p.to_vec())));
            let want = vec![
                (1, b"hello\n".to_vec()),
                (2, b"oops\n".to_vec()),
                (1, Vec::new()),
                (1, b"bye\n".to_vec()),
            ];
            assert_eq!(got, want, "cut at {cut}");
        }
    }
}
