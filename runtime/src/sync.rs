//! Messages between the runtime and the container's init process over a
//! SOCK_SEQPACKET socketpair (one datagram per message, close-on-exec, so a
//! successful exec reads as end-of-file on the runtime side).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};

/// A message on the sync channel.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Msg {
    /// child → runtime: write my uid/gid maps, then answer `Ok`.
    WriteMaps,
    /// child → runtime: the container init's pid (in the runtime's pid namespace).
    Pid(i32),
    /// child → runtime: run the prestart and createRuntime hooks, then answer `Ok`.
    RunHooks,
    /// child → runtime: set up, waiting for `start`.
    Ready,
    /// runtime → child: go on.
    Ok,
    /// child → runtime: a step failed.
    Error(String),
    /// runtime → child: the state JSON for container hooks.
    Text(String),
}

pub(crate) struct Channel {
    fd: OwnedFd,
}

pub(crate) fn pair() -> Result<(Channel, Channel), Errno> {
    let (a, b) = socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    pub(crate) fn send(&self, msg: &Msg) -> Result<(), Errno> {
        let mut buf = Vec::with_capacity(16);
        match msg {
            Msg::WriteMaps => buf.push(b'M'),
            Msg::Pid(p) => {
                buf.push(b'P');
                buf.extend_from_slice(&p.to_le_bytes());
            }
            Msg::RunHooks => buf.push(b'H'),
            Msg::Ready => buf.push(b'R'),
            Msg::Ok => buf.push(b'K'),
            Msg::Error(e) => {
                buf.push(b'E');
                buf.extend_from_slice(e.as_bytes());
            }
            Msg::Text(t) => {
                buf.push(b'T');
                buf.extend_from_slice(t.as_bytes());
            }
        }
        loop {
            match socket::send(self.fd.as_raw_fd(), &buf, MsgFlags::MSG_NOSIGNAL) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
                Ok(_) => return Ok(()),
            }
        }
    }

    /// Receives one message; `None` at end-of-file (the peer closed or exec'd).
    pub(crate) fn recv(&self) -> Result<Option<Msg>, Errno> {
        let mut buf = [0u8; 4096];
        let n = loop {
            match socket::recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
                Ok(n) => break n,
            }
        };
        if n == 0 {
            return Ok(None);
        }
        let body = &buf[1..n];
        let msg = match buf[0] {
            b'M' => Msg::WriteMaps,
            b'P' if body.len() == 4 => {
                Msg::Pid(i32::from_le_bytes([body[0], body[1], body[2], body[3]]))
            }
            b'H' => Msg::RunHooks,
            b'R' => Msg::Ready,
            b'K' => Msg::Ok,
            b'E' => Msg::Error(String::from_utf8_lossy(body).into_owned()),
            b'T' => Msg::Text(String::from_utf8_lossy(body).into_owned()),
            _ => return Err(Errno::EBADMSG),
        };
        Ok(Some(msg))
    }

    /// Waits for `Ok`; anything else is an error.
    pub(crate) fn expect_ok(&self) -> Result<(), Errno> {
        match self.recv()? {
            Some(Msg::Ok) => Ok(()),
            _ => Err(Errno::EPIPE),
        }
    }
}

/// Sends `fd` over the unix socket `sock` with SCM_RIGHTS.
pub(crate) fn send_fd(sock: BorrowedFd<'_>, fd: RawFd) -> Result<(), Errno> {
    let iov = [std::io::IoSlice::new(b"/dev/ptmx")];
    let fds = [fd];
    let cmsg = [socket::ControlMessage::ScmRights(&fds)];
    socket::sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)?;
    Ok(())
}

/// Receives one fd sent with SCM_RIGHTS on `sock`.
pub fn recv_fd(sock: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = socket::recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )?;
    for c in msg.cmsgs()? {
        if let socket::ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed this fd for us; we own it.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(Errno::EBADMSG)
}
