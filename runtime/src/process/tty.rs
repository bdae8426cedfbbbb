//! A pty for a container with `terminal: true`: the slave becomes the process's
//! stdio and controlling terminal, the master goes to the console socket.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};

use crate::error::{Error, Result};
use crate::sync::send_fd;

/// Creates the pty (in the container's /dev/pts), sends the master over `console`,
/// binds the slave to /dev/console when `bind_console`, and makes it our stdio.
pub fn setup(console: RawFd, size: Option<(u16, u16)>, bind_console: bool) -> Result<()> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(|e| Error::sys("opening /dev/ptmx", e))?;
    grantpt(&master).map_err(|e| Error::sys("grantpt", e))?;
    unlockpt(&master).map_err(|e| Error::sys("unlockpt", e))?;
    let name = ptsname_r(&master).map_err(|e| Error::sys("ptsname", e))?;
    let slave = nix::fcntl::open(
        Path::new(&name),
        OFlag::O_RDWR | OFlag::O_NOCTTY,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::sys(format!("opening {name}"), e))?;
    // SAFETY: open just returned this fd; we own it.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    if let Some((rows, cols)) = size {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a valid winsize.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
    if bind_console {
        let console_path = Path::new("/dev/console");
        if !console_path.exists() {
            let _ = std::fs::File::create(console_path);
        }
        mount(
            Some(Path::new(&name)),
            console_path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| Error::sys("binding the pty to /dev/console", e))?;
    }
    // SAFETY: the caller passes the console socket fd it owns and keeps open.
    let sock = unsafe { std::os::fd::BorrowedFd::borrow_raw(console) };
    send_fd(sock, master.as_raw_fd())
        .map_err(|e| Error::sys("sending the pty master to the console socket", e))?;
    drop(master);
    nix::unistd::setsid().map_err(|e| Error::sys("setsid", e))?;
    // SAFETY: TIOCSCTTY on our own open tty fd.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(Error::sys(
            "making the pty the controlling terminal",
            nix::errno::Errno::last(),
        ));
    }
    for target in 0..3 {
        nix::unistd::dup2(slave.as_fd().as_raw_fd(), target)
            .map_err(|e| Error::sys("dup2 of the pty", e))?;
    }
    Ok(())
}
