//! Network namespaces and veth pairs for the tests and the bench, removed on drop: deleting a
//! namespace deletes every veth (and shadowd's mirror pair) inside it. Namespaces are named
//! `shdt<pid>-<n>-<role>`, so ones left by a process killed outright can be found and
//! removed ([`remove_stale`]).

use std::{
    fs::File,
    net::{SocketAddr, TcpStream},
    os::fd::AsRawFd,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use crate::run;

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// What every namespace name begins with, before the creating process's id.
const PREFIX: &str = "shdt";

/// A named network namespace (`ip netns`), deleted on drop with everything inside it.
#[derive(Debug)]
pub struct Netns {
    /// The name `ip netns` knows it by.
    pub name: String,
}

impl Netns {
    /// Creates `shdt<pid>-<n>-<role>` with its loopback up.
    pub fn new(role: &str) -> Netns {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{id}-{role}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Runs `ip -n <ns> args…`.
    pub fn ip(&self, args: &[&str]) -> String {
        run(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        self.command_on(None, program)
    }

    /// A command that runs `program` inside the namespace, on `cpu` only when given
    /// (`taskset -c`).
    pub fn command_on(&self, cpu: Option<usize>, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]);
        if let Some(cpu) = cpu {
            cmd.args(["taskset", "-c", &cpu.to_string()]);
        }
        cmd.arg(program);
        cmd
    }

    /// Sets the namespace's own `key` (a per-namespace sysctl) to `value`.
    pub fn sysctl(&self, key: &str, value: &str) {
        run(self
            .command("sysctl")
            .args(["-w", &format!("{key}={value}")]));
    }

    /// `GET path` on `addr` from inside the namespace: (status, body), or None if nothing
    /// answers.
    pub fn http_get(&self, addr: &str, path: &str) -> Option<(u16, String)> {
        self.enter(|| crate::shadowd::http_get(addr, path))
    }

    /// Whether something accepts TCP connections on `addr` inside the namespace.
    pub fn listening(&self, addr: &str) -> bool {
        let Ok(addr) = addr.parse::<SocketAddr>() else {
            return false;
        };
        self.enter(|| TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok())
    }

    /// Runs `f` on a thread that has entered the namespace; sockets it creates stay in it.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = self.path();
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    join_namespace(&path);
                    f()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Starts `f` on a thread of its own inside the namespace, for servers and relays that
    /// outlive the call.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = self.path();
        std::thread::spawn(move || {
            join_namespace(&path);
            f()
        })
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Gives programs run with `ip netns exec` in this namespace their own `/etc/hosts`
    /// (iproute2 bind-mounts `/etc/netns/<name>/hosts` over it): how tests name services.
    pub fn set_hosts(&self, entries: &[(&str, &str)]) {
        let dir = format!("/etc/netns/{}", self.name);
        std::fs::create_dir_all(&dir).expect("create /etc/netns dir");
        let mut text = String::from("127.0.0.1 localhost\n::1 localhost\n");
        for (address, names) in entries {
            text.push_str(&format!("{address} {names}\n"));
        }
        std::fs::write(format!("{dir}/hosts"), text).expect("write hosts");
    }

    /// Names of the links in the namespace.
    pub fn links(&self) -> Vec<String> {
        self.ip(&["-o", "link", "show"])
            .lines()
            .filter_map(|line| line.split(": ").nth(1))
            .map(|name| name.split('@').next().unwrap_or(name).to_string())
            .collect()
    }
}

/// Moves the calling thread into the network namespace at `path`.
fn join_namespace(path: &str) {
    let file = File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    // SAFETY: setns on this thread only, with a namespace file descriptor.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
}

impl Drop for Netns {
    fn drop(&mut self) {
        delete(&self.name);
    }
}

fn delete(name: &str) {
    let _ = Command::new("ip").args(["netns", "del", name]).status();
    let _ = std::fs::remove_dir_all(format!("/etc/netns/{name}"));
}

/// Deletes the namespaces whose creating process no longer runs (killed before its guards
/// could); returns their names.
pub fn remove_stale() -> Vec<String> {
    let list = run(Command::new("ip").args(["netns", "list"]));
    let mut removed = Vec::new();
    for name in list
        .lines()
        .filter_map(|line| line.split_whitespace().next())
    {
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            delete(name);
            removed.push(name.to_string());
        }
    }
    removed
}

/// Client and server namespaces joined by a veth: `cli0` 198.18.0.1 / fd00:18::1 in the
/// client, `srv0` 198.18.0.2 / fd00:18::2 in the server.
pub struct Topology {
    /// The client's namespace.
    pub client: Netns,
    /// Production's namespace, where shadowd runs.
    pub server: Netns,
}

impl Topology {
    /// The client's IPv4 address.
    pub const CLIENT_V4: &'static str = "198.18.0.1";
    /// Production's IPv4 address.
    pub const SERVER_V4: &'static str = "198.18.0.2";
    /// The client's IPv6 address.
    pub const CLIENT_V6: &'static str = "fd00:18::1";
    /// Production's IPv6 address.
    pub const SERVER_V6: &'static str = "fd00:18::2";
    /// The client's end of the veth.
    pub const CLIENT_IF: &'static str = "cli0";
    /// Production's end of the veth: the interface shadowd watches.
    pub const SERVER_IF: &'static str = "srv0";

    /// Creates both namespaces and the veth between them.
    pub fn new() -> Topology {
        let client = Netns::new("c");
        let server = Netns::new("s");
        run(Command::new("ip").args([
            "link",
            "add",
            Self::CLIENT_IF,
            "netns",
            &client.name,
            "type",
            "veth",
            "peer",
            Self::SERVER_IF,
            "netns",
            &server.name,
        ]));
        for (ns, ifname, v4, v6) in [
            (&client, Self::CLIENT_IF, Self::CLIENT_V4, Self::CLIENT_V6),
            (&server, Self::SERVER_IF, Self::SERVER_V4, Self::SERVER_V6),
        ] {
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", ifname]);
            ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", ifname, "nodad"]);
            ns.ip(&["link", "set", ifname, "up"]);
        }
        Topology { client, server }
    }
}

/// A third namespace for shadow services, reached from the server namespace over its own
/// veth (`shd0` 198.18.1.1 in the server, `shd1` 198.18.1.2 in the shadow): copies do not
/// cross the watched interface.
pub struct ShadowHost {
    /// The shadow's namespace.
    pub ns: Netns,
}

impl ShadowHost {
    /// The shadow's address.
    pub const ADDRESS: &'static str = "198.18.1.2";

    /// Creates the shadow's namespace and its veth to production's.
    pub fn new(topology: &Topology) -> ShadowHost {
        let ns = Netns::new("sh");
        run(Command::new("ip").args([
            "link",
            "add",
            "shd0",
            "netns",
            &topology.server.name,
            "type",
            "veth",
            "peer",
            "shd1",
            "netns",
            &ns.name,
        ]));
        topology
            .server
            .ip(&["addr", "add", "198.18.1.1/24", "dev", "shd0"]);
        topology.server.ip(&["link", "set", "shd0", "up"]);
        ns.ip(&[
            "addr",
            "add",
            &format!("{}/24", Self::ADDRESS),
            "dev",
            "shd1",
        ]);
        ns.ip(&["link", "set", "shd1", "up"]);
        ShadowHost { ns }
    }
}

impl Default for Topology {
    fn default() -> Self {
        Self::new()
    }
}
