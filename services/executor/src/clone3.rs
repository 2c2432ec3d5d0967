//! Starting a job's process inside its cgroup from its first instruction, with
//! `clone3(CLONE_INTO_CGROUP)` (Linux 5.7 or newer), instead of having the child write itself
//! into `cgroup.procs` before exec.
//!
//! Why: moving a process between cgroups takes the kernel's cgroup threadgroup lock for
//! writing, which waits for an RCU grace period whenever the lock has been idle for a while:
//! measured on the development machine, a move 100 ms after the previous one takes about 7 ms,
//! one 5 ms after it about 0.1 ms. So a job that starts on a quiet executor waited 7 ms for its
//! cgroup; a process born in the cgroup takes only the read side of that lock (and the cgroup
//! mutex, which it may still share with cgroups being made or removed).
//!
//! The child runs like the one of `clone(CLONE_VM | CLONE_VFORK)`: on its own stack, sharing
//! the executor's memory, with the parent thread suspended until it execs or exits. `clone3`
//! has no entry-function argument, so the switch to `child_main` happens in the few
//! instructions right after the system call, written here in assembly; only x86_64 has them.
//! Elsewhere, or where the kernel (or a seccomp filter) refuses `clone3`, [`spawn`] says so and
//! the caller falls back on the move through `cgroup.procs`.

use std::io;
use std::os::fd::RawFd;

/// `clone3`'s argument (`struct clone_args` up to `cgroup`, `CLONE_ARGS_SIZE_VER2`).
#[repr(C)]
#[derive(Debug, Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_VM: u64 = 0x100;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_PIDFD: u64 = 0x1000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

const _: () = assert!(std::mem::size_of::<CloneArgs>() == 88);

/// Whether `clone3` into a cgroup was refused as unknown (ENOSYS: a kernel older than 5.3, or
/// a seccomp filter that makes callers fall back; E2BIG or EINVAL: a kernel older than 5.7,
/// which has no `cgroup` field): then it is not tried again.
static UNSUPPORTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether `clone3` into a cgroup is still worth trying here (false once it was refused as
/// unknown).
pub fn available() -> bool {
    cfg!(target_arch = "x86_64") && !UNSUPPORTED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Why [`spawn`] made no process.
#[derive(Debug)]
pub enum Refused {
    /// Not on this architecture or kernel: use the fallback.
    Unsupported,
    /// The kernel refused this spawn (e.g. the cgroup cannot take processes): the fallback
    /// may still work, and reports its own error if not.
    Failed(io::Error),
}

/// Clones a child into the cgroup `cgroup` (a directory descriptor) that runs
/// `child(arg)` on `stack_top` (16-byte aligned, the top of memory that outlives the child's
/// use of it) and never returns into the caller's code. Returns its pid and pidfd.
///
/// # Safety
///
/// As for `clone(CLONE_VM | CLONE_VFORK)`: `child` may only make async-signal-safe system
/// calls on data prepared beforehand and must end in `execve` or `_exit`; `arg` and the stack
/// must stay valid until then (the parent thread is suspended meanwhile); signals should be
/// blocked around the call.
pub unsafe fn spawn(
    cgroup: RawFd,
    child: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    arg: *mut libc::c_void,
    stack_top: *mut u8,
    stack_size: usize,
) -> Result<(libc::pid_t, RawFd), Refused> {
    if !available() {
        return Err(Refused::Unsupported);
    }
    let mut pidfd: libc::c_int = -1;
    let args = CloneArgs {
        flags: CLONE_VM | CLONE_VFORK | CLONE_PIDFD | CLONE_INTO_CGROUP,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        stack: stack_top as u64 - stack_size as u64,
        stack_size: stack_size as u64,
        cgroup: cgroup as u64,
        ..CloneArgs::default()
    };
    // SAFETY: the caller's contract; `args` and `pidfd` live on this frame, which the
    // suspended parent keeps until the child has exec'd or exited.
    let ret = unsafe { raw(&args, child, arg) };
    if ret < 0 {
        let e = io::Error::from_raw_os_error((-ret) as i32);
        if matches!(
            e.raw_os_error(),
            Some(libc::ENOSYS) | Some(libc::E2BIG) | Some(libc::EINVAL)
        ) {
            UNSUPPORTED.store(true, std::sync::atomic::Ordering::Relaxed);
            return Err(Refused::Unsupported);
        }
        return Err(Refused::Failed(e));
    }
    Ok((ret as libc::pid_t, pidfd))
}

/// The system call. In the child (return value 0, on the new stack) it calls `child(arg)` and
/// exits with its result; in the parent it returns the child's pid or `-errno`.
#[cfg(target_arch = "x86_64")]
unsafe fn raw(
    args: &CloneArgs,
    child: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    arg: *mut libc::c_void,
) -> i64 {
    let ret: i64;
    // SAFETY: see `spawn`. The parent's path touches no register but the outputs (the kernel
    // keeps the rest); the child's path runs on its own stack and never comes back.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp", // the child's frames end here (for backtraces)
            "mov rdi, r12",
            "call r13",
            "mov edi, eax",
            "mov eax, 60", // exit
            "syscall",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") args as *const CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") arg,
            in("r13") child,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn raw(
    _args: &CloneArgs,
    _child: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    _arg: *mut libc::c_void,
) -> i64 {
    -(libc::ENOSYS as i64)
}
