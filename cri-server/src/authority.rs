//! Rewrites an HTTP/2 `:authority` that is not a URI authority before `h2` sees it.
//!
//! Go gRPC clients (crictl, kubelet) dialing a unix socket by its bare path send that path
//! as `:authority`. The `h2` crate under tonic answers such a request with RST_STREAM
//! PROTOCOL_ERROR, so every call from them would fail. [`Rewriter`] sits on the byte stream
//! from client to server: it passes frames through untouched, except header blocks
//! (HEADERS + CONTINUATION), which it HPACK-decodes with the client's compression state
//! and re-encodes with a second state that mirrors the server's decoder. An `:authority`
//! that does not parse as a URI authority becomes `localhost` on the way.
//!
//! Re-encoding every block (instead of patching the one literal) keeps both HPACK dynamic
//! tables consistent: the client's entries are decoded by our decoder, and everything the
//! server's decoder sees was produced by our encoder.

use loona_hpack::{Decoder, Encoder};

/// The client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_LEN: usize = 9;
/// The smallest SETTINGS_MAX_FRAME_SIZE a peer may use; re-encoded blocks are split at it.
const MAX_FRAME: usize = 16_384;
/// Upper bound for one header block across its CONTINUATION frames.
const MAX_HEADER_BLOCK: usize = 1 << 20;
/// Upper bound for a frame payload we accept (RFC 9113 allows 2^24-1).
const MAX_PAYLOAD: usize = (1 << 24) - 1;

const TYPE_HEADERS: u8 = 0x1;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;

/// The authority sent to the server in place of one that is not a URI authority.
pub const REPLACEMENT_AUTHORITY: &str = "localhost";

/// Errors in the client's byte stream that make the connection unusable.
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    #[error("HTTP/2 connection preface missing or malformed")]
    Preface,
    #[error("HTTP/2 frame of type {frame_type:#x} is malformed: {reason}")]
    Frame {
        frame_type: u8,
        reason: &'static str,
    },
    #[error("header block of stream {stream} exceeds {MAX_HEADER_BLOCK} bytes")]
    HeaderBlockTooLarge { stream: u32 },
    #[error("expected CONTINUATION of stream {stream}, got frame type {got:#x}")]
    ExpectedContinuation { stream: u32, got: u8 },
    #[error("HPACK decoding of stream {stream}'s header block failed: {reason}")]
    Hpack { stream: u32, reason: String },
}

/// A header block being collected across HEADERS and CONTINUATION frames.
struct PendingBlock {
    stream: u32,
    flags: u8,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
}

/// Transforms the client-to-server byte stream of one HTTP/2 connection.
pub struct Rewriter {
    input: Vec<u8>,
    preface_done: bool,
    pending: Option<PendingBlock>,
    decoder: Decoder<'static>,
    encoder: Encoder<'static>,
}

impl Default for Rewriter {
    fn default() -> Self {
        Rewriter::new()
    }
}

impl Rewriter {
    pub fn new() -> Rewriter {
        Rewriter {
            input: Vec::new(),
            preface_done: false,
            pending: None,
            decoder: Decoder::new(),
            encoder: Encoder::new(),
        }
    }

    /// Feeds bytes read from the client; appends what the server should read to `out`.
    /// Bytes of an incomplete frame are kept for the next call.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), RewriteError> {
        self.input.extend_from_slice(data);
        let mut pos = 0;
        if !self.preface_done {
            let have = self.input.len().min(PREFACE.len());
            if self.input[..have] != PREFACE[..have] {
                return Err(RewriteError::Preface);
            }
            if have < PREFACE.len() {
                return Ok(());
            }
            out.extend_from_slice(PREFACE);
            pos = PREFACE.len();
            self.preface_done = true;
        }
        while self.input.len() - pos >= FRAME_HEADER_LEN {
            let header = &self.input[pos..pos + FRAME_HEADER_LEN];
            let len =
                usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
            if self.input.len() - pos - FRAME_HEADER_LEN < len {
                break;
            }
            let frame_type = header[3];
            let flags = header[4];
            let stream =
                u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
            let frame_end = pos + FRAME_HEADER_LEN + len;
            if frame_type == TYPE_HEADERS
                || frame_type == TYPE_CONTINUATION
                || self.pending.is_some()
            {
                let payload = self.input[pos + FRAME_HEADER_LEN..frame_end].to_vec();
                self.header_frame(frame_type, flags, stream, &payload, out)?;
            } else {
                out.extend_from_slice(&self.input[pos..frame_end]);
            }
            pos = frame_end;
        }
        self.input.drain(..pos);
        if self.input.len() > MAX_PAYLOAD + FRAME_HEADER_LEN {
            return Err(RewriteError::Frame {
                frame_type: 0,
                reason: "frame larger than 2^24-1 bytes",
            });
        }
        Ok(())
    }

    fn header_frame(
        &mut self,
        frame_type: u8,
        flags: u8,
        stream: u32,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), RewriteError> {
        match (frame_type, self.pending.as_mut()) {
            (TYPE_HEADERS, None) => {
                let mut body = payload;
                let mut pad = 0usize;
                if flags & FLAG_PADDED != 0 {
                    let (&n, rest) = body.split_first().ok_or(RewriteError::Frame {
                        frame_type,
                        reason: "PADDED without a pad length",
                    })?;
                    pad = usize::from(n);
                    body = rest;
                }
                let mut priority = None;
                if flags & FLAG_PRIORITY != 0 {
                    if body.len() < 5 {
                        return Err(RewriteError::Frame {
                            frame_type,
                            reason: "PRIORITY shorter than 5 bytes",
                        });
                    }
                    let mut p = [0u8; 5];
                    p.copy_from_slice(&body[..5]);
                    priority = Some(p);
                    body = &body[5..];
                }
                if pad > body.len() {
                    return Err(RewriteError::Frame {
                        frame_type,
                        reason: "padding longer than the payload",
                    });
                }
                let fragment = body[..body.len() - pad].to_vec();
                self.pending = Some(PendingBlock {
                    stream,
                    flags,
                    priority,
                    fragment,
                });
            }
            (TYPE_CONTINUATION, Some(block)) if block.stream == stream => {
                if block.fragment.len() + payload.len() > MAX_HEADER_BLOCK {
                    return Err(RewriteError::HeaderBlockTooLarge { stream });
                }
                block.fragment.extend_from_slice(payload);
            }
            (TYPE_CONTINUATION, None) => {
                return Err(RewriteError::Frame {
                    frame_type,
                    reason: "CONTINUATION without HEADERS",
                });
            }
            (got, Some(block)) => {
                return Err(RewriteError::ExpectedContinuation {
                    stream: block.stream,
                    got,
                });
            }
            (_, None) => {
                return Err(RewriteError::Frame {
                    frame_type,
                    reason: "not part of a header block",
                });
            }
        }
        if flags & FLAG_END_HEADERS != 0 {
            if let Some(block) = self.pending.take() {
                self.emit_block(block, out)?;
            }
        }
        Ok(())
    }

    fn emit_block(&mut self, block: PendingBlock, out: &mut Vec<u8>) -> Result<(), RewriteError> {
        let mut headers =
            self.decoder
                .decode(&block.fragment)
                .map_err(|e| RewriteError::Hpack {
                    stream: block.stream,
                    reason: e.to_string(),
                })?;
        for (name, value) in headers.iter_mut() {
            if name.as_slice() == b":authority" && !is_uri_authority(value) {
                tracing::trace!(
                    authority = %String::from_utf8_lossy(value),
                    "replacing an :authority that is not a URI authority"
                );
                *value = REPLACEMENT_AUTHORITY.as_bytes().to_vec();
            }
        }
        let encoded = self
            .encoder
            .encode(headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())));

        let mut first = Vec::with_capacity(5 + encoded.len().min(MAX_FRAME));
        let mut flags = block.flags & (FLAG_END_STREAM | FLAG_PRIORITY);
        if let Some(p) = block.priority {
            first.extend_from_slice(&p);
        }
        let room = MAX_FRAME - first.len();
        let (head, mut rest) = encoded.split_at(encoded.len().min(room));
        first.extend_from_slice(head);
        if rest.is_empty() {
            flags |= FLAG_END_HEADERS;
        }
        write_frame(out, TYPE_HEADERS, flags, block.stream, &first);
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(rest.len().min(MAX_FRAME));
            rest = tail;
            let flags = if rest.is_empty() { FLAG_END_HEADERS } else { 0 };
            write_frame(out, TYPE_CONTINUATION, flags, block.stream, chunk);
        }
        Ok(())
    }
}

fn write_frame(out: &mut Vec<u8>, frame_type: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len();
    out.extend_from_slice(&[
        (len >> 16) as u8,
        (len >> 8) as u8,
        len as u8,
        frame_type,
        flags,
    ]);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
}

fn is_uri_authority(value: &[u8]) -> bool {
    http::uri::Authority::try_from(value).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers_frame(enc: &mut Encoder<'static>, stream: u32, authority: &str) -> Vec<u8> {
        let block = enc.encode([
            (&b":method"[..], &b"POST"[..]),
            (b":scheme", b"http"),
            (b":path", b"/runtime.v1.RuntimeService/Version"),
            (b":authority", authority.as_bytes()),
            (b"content-type", b"application/grpc"),
        ]);
        let mut out = Vec::new();
        write_frame(&mut out, TYPE_HEADERS, FLAG_END_HEADERS, stream, &block);
        out
    }

    fn decode_all(bytes: &[u8]) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut dec = Decoder::new();
        let mut blocks = Vec::new();
        let mut pos = PREFACE.len();
        let mut pending = Vec::new();
        while pos < bytes.len() {
            let len = usize::from(bytes[pos]) << 16
                | usize::from(bytes[pos + 1]) << 8
                | usize::from(bytes[pos + 2]);
            let (ty, flags) = (bytes[pos + 3], bytes[pos + 4]);
            let payload = &bytes[pos + 9..pos + 9 + len];
            if ty == TYPE_HEADERS || ty == TYPE_CONTINUATION {
                let skip = if ty == TYPE_HEADERS && flags & FLAG_PRIORITY != 0 {
                    5
                } else {
                    0
                };
                pending.extend_from_slice(&payload[skip..]);
                if flags & FLAG_END_HEADERS != 0 {
                    blocks.push(dec.decode(&pending).unwrap());
                    pending.clear();
                }
            }
            pos += 9 + len;
        }
        blocks
    }

    fn authority_of(block: &[(Vec<u8>, Vec<u8>)]) -> String {
        let (_, v) = block.iter().find(|(n, _)| n == b":authority").unwrap();
        String::from_utf8(v.clone()).unwrap()
    }

    #[test]
    fn socket_path_authority_becomes_localhost_across_indexed_requests() {
        let mut enc = Encoder::new();
        let mut input = PREFACE.to_vec();
        // SETTINGS frame passes through untouched.
        write_frame(&mut input, 0x4, 0, 0, &[0, 3, 0, 0, 0, 100]);
        // The second request references the dynamic-table entry the first one created.
        input.extend(headers_frame(&mut enc, 1, "/run/berth/berth.sock"));
        input.extend(headers_frame(&mut enc, 3, "/run/berth/berth.sock"));
        input.extend(headers_frame(&mut enc, 5, "example.com:443"));
        let mut rw = Rewriter::new();
        let mut out = Vec::new();
        // Byte by byte: frames split anywhere are reassembled.
        for b in &input {
            rw.feed(std::slice::from_ref(b), &mut out).unwrap();
        }
        assert_eq!(
            &out[PREFACE.len()..PREFACE.len() + 15],
            &input[PREFACE.len()..PREFACE.len() + 15]
        );
        let blocks = decode_all(&out);
        assert_eq!(blocks.len(), 3);
        assert_eq!(authority_of(&blocks[0]), "localhost");
        assert_eq!(authority_of(&blocks[1]), "localhost");
        assert_eq!(authority_of(&blocks[2]), "example.com:443");
        let path = blocks[1].iter().find(|(n, _)| n == b":path").unwrap();
        assert_eq!(path.1, b"/runtime.v1.RuntimeService/Version");
    }

    #[test]
    fn padded_headers_with_priority_and_continuation_are_reassembled() {
        let mut enc = Encoder::new();
        let block = enc.encode([(&b":authority"[..], &b"/tmp/x.sock"[..]), (b":path", b"/a")]);
        let (a, b) = block.split_at(3);
        let mut payload = vec![2u8]; // pad length
        payload.extend_from_slice(&[0, 0, 0, 0, 7]); // priority
        payload.extend_from_slice(a);
        payload.extend_from_slice(&[0, 0]); // padding
        let mut input = PREFACE.to_vec();
        write_frame(
            &mut input,
            TYPE_HEADERS,
            FLAG_PADDED | FLAG_PRIORITY | FLAG_END_STREAM,
            1,
            &payload,
        );
        write_frame(&mut input, TYPE_CONTINUATION, FLAG_END_HEADERS, 1, b);
        let mut out = Vec::new();
        Rewriter::new().feed(&input, &mut out).unwrap();
        assert_eq!(
            out[PREFACE.len() + 4],
            FLAG_PRIORITY | FLAG_END_STREAM | FLAG_END_HEADERS
        );
        let blocks = decode_all(&out);
        assert_eq!(authority_of(&blocks[0]), "localhost");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut out = Vec::new();
        assert!(matches!(
            Rewriter::new().feed(b"GET / HTTP/1.1\r\n", &mut out),
            Err(RewriteError::Preface)
        ));
        let mut input = PREFACE.to_vec();
        write_frame(
            &mut input,
            TYPE_HEADERS,
            FLAG_END_HEADERS | FLAG_PADDED,
            1,
            &[200, 1, 2],
        );
        assert!(Rewriter::new().feed(&input, &mut out).is_err());
        let mut input = PREFACE.to_vec();
        write_frame(
            &mut input,
            TYPE_HEADERS,
            FLAG_END_HEADERS,
            1,
            &[0xff, 0xff, 0xff, 0xff, 0x0f],
        );
        assert!(matches!(
            Rewriter::new().feed(&input, &mut out),
            Err(RewriteError::Hpack { .. })
        ));
        let mut input = PREFACE.to_vec();
        write_frame(&mut input, TYPE_CONTINUATION, FLAG_END_HEADERS, 1, &[0x82]);
        assert!(Rewriter::new().feed(&input, &mut out).is_err());
    }
}
