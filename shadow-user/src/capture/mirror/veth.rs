//! The mirror veth pair: the TC program redirects clones into one end, the capture ring
//! reads them from the other. Neither end has addresses, and IPv6 is off on both, so the
//! host never sends, answers or routes anything through it.

use std::{ffi::CString, io};

use futures::TryStreamExt as _;
use rtnetlink::{
    Handle, LinkUnspec, LinkVeth,
    packet_route::link::{InfoKind, LinkAttribute, LinkInfo},
};

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
const MAX_IFNAME_LEN: usize = 15;

/// The alias (IFLA_IFALIAS) both ends of a pair carry, so that a later run replaces only a
/// pair shadowd made and never a link of the node that happens to have the name.
const MARK: &str = "shadowd mirror pair";

/// Errors setting up or removing the pair.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("opening a netlink socket")]
    Netlink(#[source] io::Error),
    #[error("{action} mirror interface {name}")]
    Link {
        action: &'static str,
        name: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("disabling IPv6 on {name}")]
    Sysctl {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("mirror interface {name} vanished right after it was created")]
    Vanished { name: String },
    #[error(
        "interface {name} exists and is not a mirror pair shadowd made ({found}); it is left \
         alone: choose another mirror_interface, or delete it if it is a leftover"
    )]
    NotOurs { name: String, found: String },
}

/// A live mirror pair, deleted by [`MirrorPair::delete`].
#[derive(Debug)]
pub struct MirrorPair {
    handle: Handle,
    /// The end the TC program redirects clones to.
    pub name: String,
    pub ifindex: u32,
    /// The end the capture ring reads from.
    pub peer: String,
    pub peer_ifindex: u32,
}

/// The peer's name for a mirror interface name: `<name>-peer`, shortened to fit.
pub fn peer_name(name: &str) -> String {
    let suffix = "-peer";
    let room = MAX_IFNAME_LEN - suffix.len();
    // Cut at a character boundary: a name may be any UTF-8 the kernel takes.
    let keep = (0..=room.min(name.len()))
        .rev()
        .find(|at| name.is_char_boundary(*at))
        .unwrap_or(0);
    format!("{}{suffix}", &name[..keep])
}

/// Whether `name` can name a link, as the kernel's `dev_valid_name` has it: 1 to 15 bytes,
/// not `.` or `..`, no `/`, `:` or whitespace.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IFNAME_LEN
        && name != "."
        && name != ".."
        && !name.contains(['/', ':'])
        && !name.chars().any(char::is_whitespace)
}

/// Errs when a link named `name` or `<name>-peer` exists and is not a pair shadowd made:
/// creating the pair would then refuse to replace it.
pub async fn preflight(name: &str) -> Result<(), MirrorError> {
    let peer = peer_name(name);
    let existing: Vec<(&str, u32, &str)> = [(name, peer.as_str()), (peer.as_str(), name)]
        .into_iter()
        .filter_map(|(link, other)| ifindex(link).map(|index| (link, index, other)))
        .collect();
    if existing.is_empty() {
        return Ok(());
    }
    let (connection, handle, _) = rtnetlink::new_connection().map_err(MirrorError::Netlink)?;
    tokio::spawn(connection);
    for (link, index, other) in existing {
        check_ours(&handle, link, index, other).await?;
    }
    Ok(())
}

/// Index of interface `name` in the current network namespace, if it exists.
pub fn ifindex(name: &str) -> Option<u32> {
    let c_name = CString::new(name).ok()?;
    // SAFETY: `c_name` is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    (index != 0).then_some(index)
}

impl MirrorPair {
    /// Creates the pair `name` / `<name>-peer`, replacing a stale one left by a crashed run.
    pub async fn create(name: &str) -> Result<MirrorPair, MirrorError> {
        debug_assert!(valid_name(name), "checked in settings");
        let peer = peer_name(name);
        let (connection, handle, _) = rtnetlink::new_connection().map_err(MirrorError::Netlink)?;
        tokio::spawn(connection);

        for (stale, other) in [(name, peer.as_str()), (peer.as_str(), name)] {
            if let Some(index) = ifindex(stale) {
                check_ours(&handle, stale, index, other).await?;
                tracing::warn!(
                    interface = stale,
                    "removing a mirror interface left by an earlier run"
                );
                delete_link(&handle, stale, index).await?;
            }
        }
        let link_error = |action, name: &str| {
            let name = name.to_string();
            move |source| MirrorError::Link {
                action,
                name,
                source,
            }
        };
        handle
            .link()
            .add(LinkVeth::new(name, &peer).build())
            .execute()
            .await
            .map_err(link_error("creating", name))?;

        let mut pair = MirrorPair {
            handle,
            name: name.to_string(),
            ifindex: 0,
            peer: peer.clone(),
            peer_ifindex: 0,
        };
        if let Err(err) = pair.configure().await {
            // Best effort: leave nothing half set up behind.
            let _ = pair.delete().await;
            return Err(err);
        }
        Ok(pair)
    }

    async fn configure(&mut self) -> Result<(), MirrorError> {
        let vanished = |name: &str| MirrorError::Vanished { name: name.into() };
        self.ifindex = ifindex(&self.name).ok_or_else(|| vanished(&self.name))?;
        self.peer_ifindex = ifindex(&self.peer).ok_or_else(|| vanished(&self.peer))?;
        for (name, index) in [(&self.name, self.ifindex), (&self.peer, self.peer_ifindex)] {
            disable_ipv6(name)?;
            let up_and_marked = LinkUnspec::new_with_index(index)
                .up()
                .append_extra_attribute(LinkAttribute::IfAlias(MARK.to_owned()))
                .build();
            self.handle
                .link()
                .set(up_and_marked)
                .execute()
                .await
                .map_err(|source| MirrorError::Link {
                    action: "bringing up",
                    name: name.clone(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Deletes the pair (deleting one end removes both). Already gone is fine.
    pub async fn delete(self) -> Result<(), MirrorError> {
        match ifindex(&self.name) {
            Some(index) => delete_link(&self.handle, &self.name, index).await,
            None => Ok(()),
        }
    }
}

/// Errs unless interface `name` (at `index`) is an end of a pair shadowd made: a veth with
/// shadowd's mark, or a veth whose peer is `other`, as shadowd names its pairs (unmarked:
/// left by a run stopped between creating the pair and marking it, or by an older shadowd).
async fn check_ours(
    handle: &Handle,
    name: &str,
    index: u32,
    other: &str,
) -> Result<(), MirrorError> {
    let not_ours = |found: &str| MirrorError::NotOurs {
        name: name.to_owned(),
        found: found.to_owned(),
    };
    let message = handle
        .link()
        .get()
        .match_index(index)
        .execute()
        .try_next()
        .await
        .map_err(|source| MirrorError::Link {
            action: "reading",
            name: name.to_owned(),
            source,
        })?
        .ok_or_else(|| not_ours("gone while it was read"))?;
    let mut kind = None;
    let mut alias = None;
    let mut peer = None;
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::LinkInfo(infos) => {
                kind = infos.iter().find_map(|info| match info {
                    LinkInfo::Kind(kind) => Some(kind.clone()),
                    _ => None,
                });
            }
            LinkAttribute::IfAlias(text) => alias = Some(text.as_str()),
            LinkAttribute::Link(index) => peer = Some(*index),
            _ => {}
        }
    }
    match kind {
        Some(InfoKind::Veth) => {}
        Some(kind) => return Err(not_ours(&format!("a {kind} link"))),
        None => return Err(not_ours("a link of no kind, such as a physical interface")),
    }
    let paired = peer.is_some_and(|peer| Some(peer) == ifindex(other));
    match (alias == Some(MARK), paired) {
        (true, _) => Ok(()),
        (false, true) => {
            tracing::warn!(interface = name, "a mirror pair without shadowd's mark");
            Ok(())
        }
        (false, false) => Err(not_ours(&format!(
            "a veth without shadowd's mark whose peer is not {other}"
        ))),
    }
}

async fn delete_link(handle: &Handle, name: &str, index: u32) -> Result<(), MirrorError> {
    let result = handle.link().del(index).execute().await;
    match result {
        Ok(()) => Ok(()),
        // Removed meanwhile (ENODEV): that is what we wanted.
        Err(rtnetlink::Error::NetlinkError(ref msg))
            if msg.code.map(|c| c.get()) == Some(-libc::ENODEV) =>
        {
            Ok(())
        }
        Err(source) => Err(MirrorError::Link {
            action: "deleting",
            name: name.to_string(),
            source,
        }),
    }
}

/// Turns IPv6 off on `name` so it never gets a link-local address or sends solicitations.
fn disable_ipv6(name: &str) -> Result<(), MirrorError> {
    let path = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
    match std::fs::write(&path, "1") {
        Ok(()) => Ok(()),
        // No IPv6 in this kernel or namespace: nothing to turn off.
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        // Containers that are not privileged get /proc/sys read-only. The pair then keeps a
        // link-local address and may send a few neighbour-discovery packets into the mirror;
        // the reader counts them as unparsed frames and production is untouched.
        Err(err)
            if err.raw_os_error() == Some(libc::EROFS)
                || err.kind() == io::ErrorKind::PermissionDenied =>
        {
            tracing::warn!(interface = name, error = %err, "cannot disable IPv6 on the mirror interface; continuing");
            Ok(())
        }
        Err(source) => Err(MirrorError::Sysctl {
            name: name.into(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_names_fit_the_kernel_limit() {
        assert_eq!(peer_name("shadow0"), "shadow0-peer");
        assert_eq!(peer_name("averyverylongnm"), "averyveryl-peer");
        assert!(peer_name("averyverylongnm").len() <= MAX_IFNAME_LEN);
        // Cut at a character boundary, never inside one.
        assert_eq!(peer_name("mïrrör-ünï"), "mïrrör--peer");
        assert!(peer_name("mïrrör-ünï").len() <= MAX_IFNAME_LEN);
    }
}
