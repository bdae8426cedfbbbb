//! ttrpc's framing over a byte stream, shared by the shim's server ([`crate::server`])
//! and berthd's client (`berth_engine`'s `shim_conn`).
//!
//! A frame is a 10-byte header — payload length and stream id as big-endian u32, the
//! message type (1 request, 2 response) and flags — then a protobuf `Request` or
//! `Response` of that length (at most 4 MiB).

use std::io::{self, Read, Write};

pub use containerd_shim_protos::ttrpc::proto::{
    MESSAGE_HEADER_LENGTH as HEADER_LEN, MESSAGE_LENGTH_MAX as LENGTH_MAX,
    MESSAGE_TYPE_REQUEST as REQUEST, MESSAGE_TYPE_RESPONSE as RESPONSE,
};

/// A frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub length: u32,
    pub stream_id: u32,
    pub kind: u8,
    pub flags: u8,
}

impl Header {
    /// The header in its 10 bytes.
    pub fn parse(b: &[u8; HEADER_LEN]) -> Header {
        Header {
            length: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            stream_id: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            kind: b[8],
            flags: b[9],
        }
    }
}

/// Reads a header; `None` when the peer closed the stream before its first byte.
pub fn read_header(r: &mut impl Read) -> io::Result<Option<Header>> {
    let mut b = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match r.read(&mut b[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(Header::parse(&b)))
}

/// Reads a body of `length` bytes.
pub fn read_body(r: &mut impl Read, length: u32) -> io::Result<Vec<u8>> {
    let mut body = vec![0u8; length as usize];
    r.read_exact(&mut body)?;
    Ok(body)
}

/// Skips a body of `length` bytes (one over [`LENGTH_MAX`], not worth holding).
pub fn skip_body(r: &mut impl Read, length: u32) -> io::Result<()> {
    let copied = io::copy(&mut r.take(u64::from(length)), &mut io::sink())?;
    if copied < u64::from(length) {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Writes one frame with a single write of header and body.
pub fn write_frame(w: &mut impl Write, stream_id: u32, kind: u8, body: &[u8]) -> io::Result<()> {
    let length = u32::try_from(body.len())
        .ok()
        .filter(|&l| l as usize <= LENGTH_MAX)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a ttrpc message of {} bytes is over the limit of {LENGTH_MAX}",
                    body.len()
                ),
            )
        })?;
    let mut frame = Vec::with_capacity(HEADER_LEN + body.len());
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(&stream_id.to_be_bytes());
    frame.push(kind);
    frame.push(0);
    frame.extend_from_slice(body);
    w.write_all(&frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_eof_is_clean_only_between_frames() {
        let mut wire = Vec::new();
        write_frame(&mut wire, 7, REQUEST, b"hello").unwrap();
        write_frame(&mut wire, 9, RESPONSE, b"").unwrap();
        assert_eq!(&wire[..HEADER_LEN], &[0, 0, 0, 5, 0, 0, 0, 7, 1, 0]);
        let mut r = &wire[..];
        let h = read_header(&mut r).unwrap().unwrap();
        assert_eq!(
            h,
            Header {
                length: 5,
                stream_id: 7,
                kind: REQUEST,
                flags: 0
            }
        );
        assert_eq!(read_body(&mut r, h.length).unwrap(), b"hello");
        let h = read_header(&mut r).unwrap().unwrap();
        assert_eq!((h.length, h.stream_id, h.kind), (0, 9, RESPONSE));
        assert_eq!(read_header(&mut r).unwrap(), None);
        // A header cut short is an error, not a clean end.
        assert!(read_header(&mut &wire[..4]).is_err());
        let mut r = &wire[..HEADER_LEN + 2];
        let h = read_header(&mut r).unwrap().unwrap();
        assert!(skip_body(&mut r, h.length).is_err());
    }

    #[test]
    fn an_oversized_message_is_refused() {
        let body = vec![0u8; LENGTH_MAX + 1];
        let mut wire = Vec::new();
        let err = write_frame(&mut wire, 1, REQUEST, &body).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(wire.is_empty());
    }
}
