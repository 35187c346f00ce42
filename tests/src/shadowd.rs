//! Starts `shadowd run` inside a namespace and stops it (SIGTERM or SIGKILL); a running
//! daemon is killed on drop.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::PathBuf,
    process::{Child, ExitStatus, Stdio},
    time::Duration,
};

use crate::{eventually, metrics::Scrape, netns::Netns};

/// The admin address shadowd listens on inside its namespace.
pub const ADMIN: &str = "127.0.0.1:8877";

/// Path of the binary under test: `$SHADOWD_BIN`, set by `cargo xtask test`, or the
/// workspace's debug build.
pub fn binary() -> PathBuf {
    std::env::var_os("SHADOWD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/debug/shadowd"
            ))
        })
}

/// A `shadowd run` process.
pub struct Shadowd<'ns> {
    ns: &'ns Netns,
    child: Option<Child>,
    log: PathBuf,
    admin: String,
}

impl<'ns> Shadowd<'ns> {
    /// Starts `shadowd run ARGS…` in `ns` and waits until `/readyz` answers 200.
    pub fn start(ns: &'ns Netns, args: &[&str]) -> Shadowd<'ns> {
        Self::start_with_admin(ns, args, ADMIN)
    }

    /// Like [`Shadowd::start`], with the admin server on `admin` (several daemons in one
    /// namespace).
    pub fn start_with_admin(ns: &'ns Netns, args: &[&str], admin: &str) -> Shadowd<'ns> {
        Self::start_with_env(ns, args, admin, &[])
    }

    /// Like [`Shadowd::start_with_admin`], with these environment variables too.
    pub fn start_with_env(
        ns: &'ns Netns,
        args: &[&str],
        admin: &str,
        env: &[(&str, &str)],
    ) -> Shadowd<'ns> {
        let log = std::env::temp_dir().join(format!(
            "{}-{}-shadowd.log",
            ns.name,
            admin.replace([':', '.'], "_")
        ));
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = ns
            .command(binary().to_str().expect("utf-8 path"))
            .arg("run")
            .args(args)
            .args(["--admin", admin])
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("starting shadowd");
        let mut daemon = Shadowd {
            ns,
            child: Some(child),
            log,
            admin: admin.to_string(),
        };
        eventually(Duration::from_secs(30), "shadowd to become ready", || {
            if let Some(status) = daemon
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("shadowd exited early with {status}:\n{}", daemon.log_text());
            }
            (daemon.get("/readyz").map(|(code, _)| code) == Some(200)).then_some(())
        });
        daemon
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// What the daemon logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET path` on the admin server: (status, body), or None when it does not answer.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        self.ns.enter(|| http_get(&self.admin, path))
    }

    /// The current `/metrics`.
    pub fn scrape(&self) -> Scrape {
        let (status, body) = self.get("/metrics").expect("metrics endpoint answers");
        assert_eq!(status, 200);
        Scrape::parse(&body)
    }

    /// The current `/metrics` once `ready` holds and two scrapes in a row agree. A scrape
    /// encodes one metric after the other, so one taken while a request moves from counter to
    /// counter can disagree with itself; two equal ones mean nothing is moving.
    pub fn settled_scrape(
        &self,
        timeout: Duration,
        what: &str,
        ready: impl Fn(&Scrape) -> bool,
    ) -> Scrape {
        let mut previous: Option<Scrape> = None;
        eventually(timeout, what, || {
            let scrape = self.scrape();
            let unchanged = previous
                .as_ref()
                .is_some_and(|previous| previous.samples == scrape.samples);
            if ready(&scrape) && unchanged {
                return Some(scrape);
            }
            previous = Some(scrape);
            None
        })
    }

    /// The daemon's peak resident memory so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM")
    }

    /// The daemon's resident memory now (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS")
    }

    /// A size field of this daemon's own `/proc/PID/status`, in KiB; panics when it cannot be
    /// read, so that a memory check never passes on a figure it did not see.
    fn status_kib(&self, field: &str) -> u64 {
        let child = self.child.as_ref().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
            .expect("the daemon's status");
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|value| value.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or_else(|| panic!("{field} in the daemon's status"))
    }

    /// The scrape once `observed` requests of `mapping` are accounted for with nothing in
    /// flight, after checking that its ledger balances.
    pub fn accounted_for(&self, mapping: &str, observed: u64, timeout: Duration) -> Scrape {
        let scrape = self.settled_scrape(
            timeout,
            &format!("{observed} requests of {mapping} to be accounted for"),
            |scrape| {
                scrape.replay("observed_requests_total", mapping) == observed
                    && scrape.replay("in_flight_requests", mapping) == 0
            },
        );
        scrape.assert_ledger_balances(mapping);
        scrape
    }

    /// Sends `signal` to the running daemon.
    pub fn signal(&self, signal: i32) {
        let child = self.child.as_ref().expect("running");
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
    }

    /// Sends `signal` and waits for the process to end.
    pub fn stop(self, signal: i32) -> ExitStatus {
        self.stop_with_log(signal).0
    }

    /// Like [`Shadowd::stop`], also returning the daemon's whole log (what it said while
    /// shutting down).
    pub fn stop_with_log(mut self, signal: i32) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        let status = eventually(Duration::from_secs(20), "shadowd to exit", || {
            child.try_wait().ok().flatten()
        });
        let log = self.log_text();
        if signal == libc::SIGTERM {
            eprintln!("{log}");
        }
        (status, log)
    }
}

impl Drop for Shadowd<'_> {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            if std::thread::panicking() {
                eprintln!("shadowd log:\n{}", self.log_text());
            }
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// `GET path` on `addr` (in the current namespace) on a connection of its own: (status,
/// body), or None when nothing answers. Also the bench's reader of admin endpoints.
pub fn http_get(admin: &str, path: &str) -> Option<(u16, String)> {
    let mut stream =
        TcpStream::connect_timeout(&admin.parse().ok()?, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}
