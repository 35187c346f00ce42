//! Network namespaces and the bench topology, removed on drop: deleting a namespace deletes
//! every veth (and shadowd's mirror pair) inside it. Namespaces are named
//! `shb<pid>-<role>`; ones left by a bench that was killed outright are removed at start.

use std::{
    fs::File,
    net::{SocketAddr, TcpStream},
    os::fd::AsRawFd as _,
    process::Command,
    time::Duration,
};

use anyhow::{Context as _, Result, anyhow};

use super::process::output;

const PREFIX: &str = "shb";

/// A named network namespace (`ip netns`), deleted on drop with everything inside it.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates `shb<pid>-<role>` with its loopback up.
    pub fn new(role: &str) -> Result<Netns> {
        let name = format!("{PREFIX}{}-{role}", std::process::id());
        output(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Runs `ip -n <ns> args…`.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        output(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// `program` run inside the namespace, on `cpu` only when given (`taskset -c`).
    pub fn command(&self, cpu: Option<usize>, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]);
        if let Some(cpu) = cpu {
            cmd.args(["taskset", "-c", &cpu.to_string()]);
        }
        cmd.arg(program);
        cmd
    }

    /// Sets the namespace's own `key` (a per-namespace sysctl) to `value`.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        output(
            self.command(None, "sysctl")
                .args(["-w", &format!("{key}={value}")]),
        )?;
        Ok(())
    }

    /// Names resolved inside the namespace (`ip netns exec` bind-mounts
    /// `/etc/netns/<name>/hosts` over `/etc/hosts`).
    pub fn set_hosts(&self, entries: &[(&str, &str)]) -> Result<()> {
        let dir = format!("/etc/netns/{}", self.name);
        std::fs::create_dir_all(&dir)?;
        let mut text = String::from("127.0.0.1 localhost\n::1 localhost\n");
        for (address, names) in entries {
            text.push_str(&format!("{address} {names}\n"));
        }
        std::fs::write(format!("{dir}/hosts"), text)?;
        Ok(())
    }

    /// Runs `f` on a thread inside the namespace; the sockets it opens live there.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        let path = format!("/run/netns/{}", self.name);
        let file = File::open(&path).with_context(|| format!("opening {path}"))?;
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    // SAFETY: setns on this thread only, with a namespace descriptor.
                    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                    if rc != 0 {
                        return Err(anyhow!("setns {path}: {}", std::io::Error::last_os_error()));
                    }
                    Ok(f())
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// `GET path` on `addr` inside the namespace: (status, body), or None if it does not
    /// answer.
    pub fn http_get(&self, addr: &str, path: &str) -> Option<(u16, String)> {
        self.enter(|| shadowd_tests::shadowd::http_get(addr, path))
            .ok()
            .flatten()
    }

    /// Whether something accepts TCP connections on `addr` inside the namespace.
    pub fn listening(&self, addr: &str) -> bool {
        let Ok(addr) = addr.parse::<SocketAddr>() else {
            return false;
        };
        self.enter(|| TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok())
            .unwrap_or(false)
    }
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

/// Deletes `shb<pid>-*` namespaces whose bench process no longer runs.
pub fn remove_stale() -> Result<()> {
    let list = output(Command::new("ip").args(["netns", "list"]))?;
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
            println!("bench: removing namespace {name} left by an earlier run");
            delete(name);
        }
    }
    Ok(())
}

/// Three namespaces: the client (`cli0` 198.18.0.1) reaches production (`srv0` 198.18.0.2,
/// the interface shadowd watches) over one veth; production reaches the shadow host
/// (`shd0` 198.18.1.1 → `shd1` 198.18.1.2) over another, so copies never cross the watched
/// interface.
pub struct Topology {
    pub client: Netns,
    pub production: Netns,
    pub shadow: Netns,
}

impl Topology {
    pub const PRODUCTION_IF: &'static str = "srv0";
    pub const PRODUCTION_ADDR: &'static str = "198.18.0.2";
    pub const SHADOW_IF: &'static str = "shd1";
    pub const SHADOW_ADDR: &'static str = "198.18.1.2";
    /// What the shadow Mapping names; resolved through the production namespace's hosts.
    pub const SHADOW_NAME: &'static str = "shadow.bench";

    pub fn new() -> Result<Topology> {
        let topology = Topology {
            client: Netns::new("cli")?,
            production: Netns::new("prod")?,
            shadow: Netns::new("shadow")?,
        };
        topology.link(
            (&topology.client, "cli0", "198.18.0.1/24"),
            (&topology.production, Self::PRODUCTION_IF, "198.18.0.2/24"),
        )?;
        topology.link(
            (&topology.production, "shd0", "198.18.1.1/24"),
            (&topology.shadow, Self::SHADOW_IF, "198.18.1.2/24"),
        )?;
        topology
            .production
            .set_hosts(&[(Self::SHADOW_ADDR, Self::SHADOW_NAME)])?;
        Ok(topology)
    }

    fn link(&self, a: (&Netns, &str, &str), b: (&Netns, &str, &str)) -> Result<()> {
        output(Command::new("ip").args([
            "link", "add", a.1, "netns", &a.0.name, "type", "veth", "peer", b.1, "netns", &b.0.name,
        ]))?;
        for (ns, ifname, address) in [a, b] {
            ns.ip(&["addr", "add", address, "dev", ifname])?;
            ns.ip(&["link", "set", ifname, "up"])?;
        }
        Ok(())
    }
}
