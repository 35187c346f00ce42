//! Stopping one thread of a running process, as a reader stuck in a deadlock or a blocking
//! call would stop: ptrace seizes and interrupts just that thread (the rest of the process
//! runs on), and lets it go when the guard drops.

/// A thread held in a ptrace stop until dropped.
pub struct StoppedThread {
    tid: libc::pid_t,
}

impl StoppedThread {
    /// Stops thread `tid` (any process's, as root).
    pub fn stop(tid: libc::pid_t) -> StoppedThread {
        // SAFETY: ptrace(2) and waitpid(2) on a thread id; no memory of ours is passed.
        unsafe {
            let rc = libc::ptrace(libc::PTRACE_SEIZE, tid, 0, 0);
            assert_eq!(
                rc,
                0,
                "seizing thread {tid}: {}",
                std::io::Error::last_os_error()
            );
            let rc = libc::ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0);
            assert_eq!(
                rc,
                0,
                "interrupting thread {tid}: {}",
                std::io::Error::last_os_error()
            );
            let mut status = 0;
            let waited = libc::waitpid(tid, &mut status, libc::__WALL);
            assert_eq!(waited, tid, "waiting for thread {tid} to stop");
        }
        StoppedThread { tid }
    }
}

impl Drop for StoppedThread {
    fn drop(&mut self) {
        // SAFETY: detaches the thread this guard stopped; it runs on from where it was.
        unsafe { libc::ptrace(libc::PTRACE_DETACH, self.tid, 0, 0) };
    }
}

/// The ids of `pid`'s threads named `name` (their `comm`).
pub fn threads_named(pid: u32, name: &str) -> Vec<libc::pid_t> {
    let tasks = format!("/proc/{pid}/task");
    std::fs::read_dir(&tasks)
        .unwrap_or_else(|err| panic!("{tasks}: {err}"))
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let comm = std::fs::read_to_string(path.join("comm")).ok()?;
            (comm.trim_end() == name)
                .then(|| path.file_name()?.to_str()?.parse().ok())
                .flatten()
        })
        .collect()
}
