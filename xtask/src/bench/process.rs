//! Child processes of the bench (servers, shadowd, load generators), each in its own process
//! group and stopped on drop — the group first with its polite signal, then with SIGKILL —
//! so nginx workers go with their master even when the bench fails halfway.

use std::{
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::signals;

/// A running child and everything in its process group.
pub struct Proc {
    name: String,
    child: Option<Child>,
    /// Signal that asks it to finish (SIGTERM, SIGQUIT for nginx, SIGINT for tcpdump).
    stop_signal: i32,
}

impl Proc {
    /// Spawns `cmd` in a new process group with stdout and stderr going to `log`.
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path, stop_signal: i32) -> Result<Proc> {
        let out = std::fs::File::create(log).with_context(|| format!("creating {log:?}"))?;
        let err = out.try_clone()?;
        use std::os::unix::process::CommandExt as _;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        Ok(Proc {
            name: name.to_string(),
            child: Some(child),
            stop_signal,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The exit status, if it has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Waits up to `timeout` for the child to end by itself; stops it if it runs longer.
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                self.child = None;
                return Ok(status);
            }
            signals::check()?;
            if Instant::now() >= deadline {
                self.stop();
                bail!("{} ran longer than {timeout:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Asks the group to finish and waits (SIGKILL after 10 s).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let group = child.id() as libc::pid_t;
        // SAFETY: kill(2) on the process group this guard created and still owns (the
        // child has not been reaped, so its id is not reused).
        unsafe { libc::kill(-group, self.stop_signal) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                // Workers that outlive their leader.
                // SAFETY: as above; a group with no members left makes kill fail harmlessly.
                unsafe { libc::kill(-group, libc::SIGKILL) };
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("bench: {} did not stop in 10 s; killing it", self.name);
        // SAFETY: as above.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        child.wait().ok()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// User plus system CPU seconds of process `pid` (all its threads, live and ended).
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces): state is field 3, utime 14,
    // stime 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(ticks as f64 / hz)
}

/// A `Vm*` line of `/proc/<pid>/status`, in KiB (`VmRSS`, `VmHWM`).
pub fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// Runs `cmd` to completion and returns its stdout, failing with its stderr.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The soft open-file limit.
pub fn fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit with a valid pointer to an rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    limit.rlim_cur
}

/// Open files the bench needs: both ends of 50,000 client connections are in this process.
const FD_LIMIT: u64 = 1 << 18;

/// Raises the open-file limit to `FD_LIMIT` (root may raise the hard limit too), or at
/// least the soft limit to the hard one: tens of thousands of connections, and nginx and
/// shadowd inherit it.
pub fn raise_fd_limit() -> Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            bail!("getrlimit: {}", std::io::Error::last_os_error());
        }
        limit.rlim_max = limit.rlim_max.max(FD_LIMIT);
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
            return Ok(());
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            bail!("setrlimit: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}
