//! berth's minimal init, PID 1 of a container created with `Init` (`docker run
//! --init`): runs the command given after `--`, forwards every signal it receives to
//! it, reaps every zombie in the container and exits with the command's status
//! (128 + the signal when a signal ended it).
//!
//! Built by the engine's build script as a static executable (no libc of the image
//! needed) with std only: the few libc calls std has no API for are declared here.

use std::os::unix::process::CommandExt;
use std::process::{exit, Command};

/// glibc's `sigset_t` (1024 bits) and `siginfo_t` (128 bytes) on Linux.
#[repr(C)]
struct SigSet([u64; 16]);
#[repr(C)]
struct SigInfo {
    signo: i32,
    _rest: [i32; 31],
}

extern "C" {
    fn sigfillset(set: *mut SigSet) -> i32;
    fn sigprocmask(how: i32, set: *const SigSet, old: *mut SigSet) -> i32;
    fn sigwaitinfo(set: *const SigSet, info: *mut SigInfo) -> i32;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    fn kill(pid: i32, sig: i32) -> i32;
    fn setpgid(pid: i32, pgid: i32) -> i32;
    fn getpid() -> i32;
    fn isatty(fd: i32) -> i32;
    fn tcsetpgrp(fd: i32, pgrp: i32) -> i32;
}

const SIG_BLOCK: i32 = 0;
const SIG_SETMASK: i32 = 2;
const SIGCHLD: i32 = 17;
const WNOHANG: i32 = 1;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--") {
        args.remove(0);
    }
    let Some((program, rest)) = args.split_first() else {
        eprintln!("berth-init: usage: berth-init -- COMMAND [ARG...]");
        exit(2);
    };
    let mut all = SigSet([0; 16]);
    let mut old = SigSet([0; 16]);
    // SAFETY: both sets are valid, writable sigset_t-sized buffers.
    unsafe {
        sigfillset(&mut all);
        sigprocmask(SIG_BLOCK, &all, &mut old);
    }
    // Blocked, not ignored: the signals queue for sigwaitinfo below, and the kernel
    // does not drop them as it drops unhandled signals to a namespace's PID 1.
    let old_mask = old.0;
    let mut command = Command::new(program);
    command.args(rest);
    // SAFETY: the closure only makes async-signal-safe calls.
    unsafe {
        command.pre_exec(move || {
            // std has emptied the mask: block again (SIGTTOU above all, which taking
            // the terminal from a background group raises) until the group is set.
            let mut all = SigSet([0; 16]);
            sigfillset(&mut all);
            sigprocmask(SIG_SETMASK, &all, std::ptr::null_mut());
            setpgid(0, 0);
            if isatty(0) == 1 {
                // Not our controlling terminal: the command runs in the background.
                tcsetpgrp(0, getpid());
            }
            let mask = SigSet(old_mask);
            sigprocmask(SIG_SETMASK, &mask, std::ptr::null_mut());
            Ok(())
        });
    }
    let child = match command.spawn() {
        Ok(child) => child.id() as i32,
        Err(e) => {
            eprintln!("berth-init: running {program}: {e}");
            exit(if e.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 });
        }
    };
    loop {
        let mut info = SigInfo {
            signo: 0,
            _rest: [0; 31],
        };
        // SAFETY: `all` is a valid set and `info` a siginfo_t-sized buffer.
        let sig = unsafe { sigwaitinfo(&all, &mut info) };
        if sig < 0 {
            continue;
        }
        if sig != SIGCHLD {
            // SAFETY: kill takes plain integers.
            unsafe { kill(child, sig) };
            continue;
        }
        loop {
            let mut status = 0;
            // SAFETY: status is a valid int to write.
            let pid = unsafe { waitpid(-1, &mut status, WNOHANG) };
            if pid <= 0 {
                break;
            }
            if pid == child {
                let code = if status & 0x7f == 0 {
                    (status >> 8) & 0xff
                } else {
                    128 + (status & 0x7f)
                };
                exit(code);
            }
        }
    }
}
