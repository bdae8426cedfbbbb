//! SPDY/3.1 framing (draft-mbelshe-httpbis-spdy-00 as revised for 3.1): the frames a
//! streaming server reads and writes, and the zlib-compressed header blocks.
//!
//! Header blocks share one zlib stream per direction for the whole connection, primed
//! with SPDY/3's fixed dictionary. Inflating needs the dictionary (clients compress with
//! it); deflating does not (a zlib header without FDICT tells the peer not to use it), so
//! the writer uses a plain zlib stream with a sync flush after every block.

use std::collections::BTreeMap;
use std::io;

use flate2::{Compress, Compression, FlushCompress};
use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;
use tokio::io::{AsyncRead, AsyncReadExt};

/// SPDY/3's header compression dictionary (the spec's fixed byte string).
const DICTIONARY: &[u8] = include_bytes!("spdy_dictionary.bin");

const VERSION: u16 = 3;
pub(crate) const FLAG_FIN: u8 = 0x01;

pub(crate) const SYN_STREAM: u16 = 1;
pub(crate) const SYN_REPLY: u16 = 2;
pub(crate) const RST_STREAM: u16 = 3;
pub(crate) const SETTINGS: u16 = 4;
pub(crate) const PING: u16 = 6;
pub(crate) const GOAWAY: u16 = 7;
pub(crate) const HEADERS: u16 = 8;
pub(crate) const WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status: the stream was cancelled.
pub(crate) const RST_CANCEL: u32 = 5;
/// RST_STREAM status: a SYN_STREAM for a stream id already in use.
pub(crate) const RST_PROTOCOL_ERROR: u32 = 1;

/// Largest frame payload accepted (SPDY's length field allows 16 MiB).
const MAX_FRAME: usize = 16 << 20;

/// Header names (lower-cased, as SPDY sends them) and their values.
pub(crate) type Headers = BTreeMap<String, Vec<String>>;

/// One frame as read from the wire, header blocks already inflated.
#[derive(Debug)]
pub(crate) enum Frame {
    Data {
        stream: u32,
        fin: bool,
        data: Vec<u8>,
    },
    SynStream {
        stream: u32,
        fin: bool,
        headers: Headers,
    },
    RstStream {
        stream: u32,
    },
    Ping {
        id: u32,
    },
    GoAway,
    /// Frames this server takes no action on (SETTINGS, WINDOW_UPDATE, HEADERS,
    /// SYN_REPLY, unknown types).
    Ignored,
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Reads frames from one connection, holding its header-inflating zlib stream.
pub(crate) struct FrameReader {
    inflater: Inflater,
}

impl FrameReader {
    pub(crate) fn new() -> FrameReader {
        FrameReader {
            inflater: Inflater::new(),
        }
    }

    /// The next frame; `Ok(None)` at a clean end of the connection.
    pub(crate) async fn read<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
    ) -> io::Result<Option<Frame>> {
        let mut head = [0u8; 8];
        match r.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let flags = head[4];
        let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
        if len > MAX_FRAME {
            return Err(invalid(format!("SPDY frame of {len} bytes is too large")));
        }
        let mut payload = vec![0u8; len];
        r.read_exact(&mut payload).await?;
        let first = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        if first & 0x8000_0000 == 0 {
            return Ok(Some(Frame::Data {
                stream: first & 0x7fff_ffff,
                fin: flags & FLAG_FIN != 0,
                data: payload,
            }));
        }
        let version = ((first >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(invalid(format!("SPDY version {version}, not 3")));
        }
        let kind = (first & 0xffff) as u16;
        let stream_id = |p: &[u8]| -> io::Result<u32> {
            let b: [u8; 4] = p
                .get(..4)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| invalid("short SPDY control frame"))?;
            Ok(u32::from_be_bytes(b) & 0x7fff_ffff)
        };
        Ok(Some(match kind {
            SYN_STREAM => {
                let stream = stream_id(&payload)?;
                let block = payload
                    .get(10..)
                    .ok_or_else(|| invalid("short SYN_STREAM"))?;
                let headers = parse_headers(&self.inflater.inflate(block)?)?;
                Frame::SynStream {
                    stream,
                    fin: flags & FLAG_FIN != 0,
                    headers,
                }
            }
            SYN_REPLY | HEADERS => {
                // Keep the shared zlib stream in step even though the content is unused.
                if let Some(block) = payload.get(4..) {
                    self.inflater.inflate(block)?;
                }
                Frame::Ignored
            }
            RST_STREAM => Frame::RstStream {
                stream: stream_id(&payload)?,
            },
            PING => Frame::Ping {
                id: stream_id(&payload).map(|_| {
                    u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])
                })?,
            },
            GOAWAY => Frame::GoAway,
            SETTINGS | WINDOW_UPDATE => Frame::Ignored,
            _ => Frame::Ignored,
        }))
    }
}

/// Encodes frames for one connection, holding its header-deflating zlib stream.
pub(crate) struct FrameWriter {
    deflater: Compress,
}

impl FrameWriter {
    pub(crate) fn new() -> FrameWriter {
        FrameWriter {
            deflater: Compress::new(Compression::default(), true),
        }
    }

    pub(crate) fn data(out: &mut Vec<u8>, stream: u32, fin: bool, data: &[u8]) {
        out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
        out.push(if fin { FLAG_FIN } else { 0 });
        out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
        out.extend_from_slice(data);
    }

    fn control(out: &mut Vec<u8>, kind: u16, flags: u8, payload: &[u8]) {
        out.extend_from_slice(&(0x8000u16 | VERSION).to_be_bytes());
        out.extend_from_slice(&kind.to_be_bytes());
        out.push(flags);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        out.extend_from_slice(payload);
    }

    /// SYN_REPLY for `stream` with an empty header block.
    pub(crate) fn syn_reply(&mut self, out: &mut Vec<u8>, stream: u32) -> io::Result<()> {
        let mut payload = stream.to_be_bytes().to_vec();
        self.deflate(&0u32.to_be_bytes(), &mut payload)?;
        Self::control(out, SYN_REPLY, 0, &payload);
        Ok(())
    }

    pub(crate) fn rst_stream(out: &mut Vec<u8>, stream: u32, status: u32) {
        let mut payload = stream.to_be_bytes().to_vec();
        payload.extend_from_slice(&status.to_be_bytes());
        Self::control(out, RST_STREAM, 0, &payload);
    }

    pub(crate) fn ping(out: &mut Vec<u8>, id: u32) {
        Self::control(out, PING, 0, &id.to_be_bytes());
    }

    pub(crate) fn goaway(out: &mut Vec<u8>, last_stream: u32) {
        let mut payload = last_stream.to_be_bytes().to_vec();
        payload.extend_from_slice(&0u32.to_be_bytes());
        Self::control(out, GOAWAY, 0, &payload);
    }

    fn deflate(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let mut consumed = 0;
        loop {
            out.reserve(input.len() + 64);
            let before_in = self.deflater.total_in();
            self.deflater
                .compress_vec(&input[consumed..], out, FlushCompress::Sync)
                .map_err(|e| invalid(format!("compressing SPDY headers: {e}")))?;
            consumed += (self.deflater.total_in() - before_in) as usize;
            // Done once all input is in and the flush fitted (spare room was left).
            if consumed == input.len() && out.len() < out.capacity() {
                return Ok(());
            }
        }
    }
}

/// Parses an inflated SPDY/3 name/value block.
pub(crate) fn parse_headers(block: &[u8]) -> io::Result<Headers> {
    let mut at = 0usize;
    let mut take = |n: usize| -> io::Result<&[u8]> {
        let s = block
            .get(at..at + n)
            .ok_or_else(|| invalid("truncated SPDY header block"))?;
        at += n;
        Ok(s)
    };
    let word = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let count = word(take(4)?);
    let mut headers = Headers::new();
    for _ in 0..count {
        let n = word(take(4)?);
        let name = String::from_utf8_lossy(take(n)?).to_ascii_lowercase();
        let n = word(take(4)?);
        let value = take(n)?;
        let values = headers.entry(name).or_default();
        for v in value.split(|b| *b == 0) {
            values.push(String::from_utf8_lossy(v).into_owned());
        }
    }
    Ok(headers)
}

/// Encodes a SPDY/3 name/value block (uncompressed).
#[cfg(test)]
pub(crate) fn encode_headers(headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = (headers.len() as u32).to_be_bytes().to_vec();
    for (k, v) in headers {
        out.extend_from_slice(&(k.len() as u32).to_be_bytes());
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

/// Window of the inflater's ring buffer: deflate's 32 KiB distance, twice over, a power
/// of two as miniz's wrapping mode needs.
const WINDOW: usize = 64 * 1024;

/// The connection's header inflater: one raw-deflate stream after a zlib header that
/// names SPDY's dictionary, which is preloaded into the ring buffer so back-references
/// into it resolve.
struct Inflater {
    state: Box<DecompressorOxide>,
    ring: Vec<u8>,
    pos: usize,
    header_left: usize,
    header: Vec<u8>,
}

impl Inflater {
    fn new() -> Inflater {
        let mut ring = vec![0u8; WINDOW];
        ring[..DICTIONARY.len()].copy_from_slice(DICTIONARY);
        Inflater {
            state: Box::default(),
            ring,
            pos: DICTIONARY.len(),
            header_left: 2,
            header: Vec::new(),
        }
    }

    /// Inflates one header block (a sync-flushed piece of the connection's stream).
    fn inflate(&mut self, mut input: &[u8]) -> io::Result<Vec<u8>> {
        // The zlib header (2 bytes, plus a 4-byte dictionary id when FDICT is set) comes
        // before the first block only.
        while self.header_left > 0 && !input.is_empty() {
            self.header.push(input[0]);
            input = &input[1..];
            self.header_left -= 1;
            if self.header.len() == 2 {
                let (cmf, flg) = (self.header[0], self.header[1]);
                if cmf & 0x0f != 8 || (u16::from(cmf) << 8 | u16::from(flg)) % 31 != 0 {
                    return Err(invalid("SPDY header block is not a zlib stream"));
                }
                if flg & 0x20 != 0 {
                    self.header_left = 4;
                }
            }
        }
        let mut out = Vec::new();
        loop {
            let flags = inflate_flags::TINFL_FLAG_HAS_MORE_INPUT;
            let (status, used, written) =
                decompress(&mut self.state, input, &mut self.ring, self.pos, flags);
            let end = self.pos + written;
            out.extend_from_slice(&self.ring[self.pos..end]);
            self.pos = end & (WINDOW - 1);
            input = &input[used..];
            match status {
                TINFLStatus::HasMoreOutput => continue,
                TINFLStatus::NeedsMoreInput | TINFLStatus::Done if input.is_empty() => {
                    return Ok(out)
                }
                TINFLStatus::NeedsMoreInput => continue,
                TINFLStatus::Done => return Ok(out),
                s => return Err(invalid(format!("inflating SPDY headers: {s:?}"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deflates with the dictionary as a SPDY client does (zlib with FDICT), using
    /// miniz's raw deflate over dictionary + data and cutting the dictionary's part off
    /// is not possible; so this test drives the inflater with what flate2 produces
    /// without a dictionary (FDICT clear), which exercises the ring buffer and header
    /// parsing, and the e2e tests cover dictionary-primed streams from a Go client.
    #[test]
    fn header_blocks_round_trip_across_a_shared_stream() {
        let mut w = FrameWriter::new();
        let mut inflater = Inflater::new();
        for i in 0..200 {
            let port = i.to_string();
            let block = encode_headers(&[("streamtype", "data"), ("port", &port)]);
            let mut z = Vec::new();
            w.deflate(&block, &mut z).expect("deflate");
            let plain = inflater.inflate(&z).expect("inflate");
            let headers = parse_headers(&plain).expect("parse");
            assert_eq!(headers["port"], vec![port]);
            assert_eq!(headers["streamtype"], vec!["data".to_string()]);
        }
    }

    #[tokio::test]
    async fn frames_are_read_back() {
        let mut w = FrameWriter::new();
        let mut buf = Vec::new();
        FrameWriter::data(&mut buf, 3, true, b"hello");
        FrameWriter::ping(&mut buf, 7);
        w.syn_reply(&mut buf, 5).expect("reply");
        let mut r = FrameReader::new();
        let mut src = &buf[..];
        match r.read(&mut src).await.expect("read") {
            Some(Frame::Data { stream, fin, data }) => {
                assert_eq!((stream, fin, &data[..]), (3, true, &b"hello"[..]))
            }
            f => panic!("unexpected {f:?}"),
        }
        assert!(matches!(
            r.read(&mut src).await.expect("read"),
            Some(Frame::Ping { id: 7 })
        ));
        assert!(matches!(
            r.read(&mut src).await.expect("read"),
            Some(Frame::Ignored)
        ));
        assert!(r.read(&mut src).await.expect("read").is_none());
    }
}
