//! `interfaces: auto`: finds the host side of the veth of each production pod on this node,
//! and follows them as pods come and go. A pod's address is looked up in the kernel's
//! routing table (a CNI that routes each pod, as Calico and Cilium do, has a route through
//! its `cali*`/`lxc*` veth); when the route goes through a bridge (the bridge plugin's
//! `cni0`), the pod's MAC address from the neighbour table names the bridge port in the
//! bridge's forwarding database. Only a veth whose peer is in another network namespace
//! counts (Cilium's `cilium_host`/`cilium_net` pair is not a pod's). Netlink link, route
//! and neighbour events, not polling, say when to look again. A veth once found stays
//! watched while its link and its pod's endpoint last, even when a lookup no longer finds
//! it (a bridge's forwarding entry ages out while the pod is idle).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    time::Duration,
};

use futures::{StreamExt as _, TryStreamExt as _};
use rtnetlink::{
    Handle,
    constants::{RTMGRP_IPV4_ROUTE, RTMGRP_IPV6_ROUTE, RTMGRP_LINK, RTMGRP_NEIGH},
    packet_route::{
        AddressFamily,
        link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage},
        neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage},
        route::{RouteAttribute, RouteMessage},
    },
    sys::{AsyncSocket as _, SocketAddr},
};
use tokio::sync::watch;

/// How long a burst of netlink events is gathered before looking again.
const SETTLE: Duration = Duration::from_millis(200);

/// A pod's veth: its host-side name and index (a veth re-created under the same name is
/// another one, to attach again).
pub type PodVeth = (String, u32);

/// What a link is, as far as finding pods goes.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Link {
    name: String,
    kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A veth whose peer is in another network namespace: a pod's.
    PodVeth,
    Bridge,
    Other,
}

/// What one look found: each pod's veth, and the links that exist.
struct Found {
    by_pod: BTreeMap<IpAddr, PodVeth>,
    links: BTreeMap<u32, Link>,
}

/// The veths of the node's links that lead to `pods`.
async fn find(handle: &Handle, pods: &BTreeSet<IpAddr>) -> Result<Found, rtnetlink::Error> {
    let links = links(handle).await?;
    let mut by_pod = BTreeMap::new();
    let mut bridged: Vec<(IpAddr, u32)> = Vec::new();
    for pod in pods {
        let Some(oif) = route_oif(handle, *pod).await? else {
            continue;
        };
        match links.get(&oif).map(|link| link.kind) {
            Some(Kind::PodVeth) => {
                by_pod.insert(*pod, (links[&oif].name.clone(), oif));
            }
            Some(Kind::Bridge) => bridged.push((*pod, oif)),
            _ => {}
        }
    }
    if !bridged.is_empty() {
        let macs = neighbour_macs(handle).await?;
        let ports = bridge_ports(handle).await?;
        for (pod, bridge) in bridged {
            let port = macs
                .get(&(pod, bridge))
                .and_then(|mac| ports.get(&(bridge, mac.clone())));
            if let Some((index, link)) = port.and_then(|port| links.get_key_value(port))
                && link.kind == Kind::PodVeth
            {
                by_pod.insert(pod, (link.name.clone(), *index));
            }
        }
    }
    Ok(Found { by_pod, links })
}

/// The veths to watch now: those `found`, and those `before` of pods still `wanted` whose
/// link is still there under its name, though this look did not find them.
fn watched(
    found: Found,
    before: &BTreeMap<IpAddr, PodVeth>,
    wanted: &BTreeSet<IpAddr>,
) -> BTreeMap<IpAddr, PodVeth> {
    let mut watched = found.by_pod;
    for (pod, (name, index)) in before {
        let still_there = found
            .links
            .get(index)
            .is_some_and(|link| &link.name == name);
        if wanted.contains(pod) && still_there && !watched.contains_key(pod) {
            watched.insert(*pod, (name.clone(), *index));
        }
    }
    watched
}

/// Every link by index, with its name and kind.
async fn links(handle: &Handle) -> Result<BTreeMap<u32, Link>, rtnetlink::Error> {
    let messages: Vec<LinkMessage> = handle.link().get().execute().try_collect().await?;
    Ok(messages
        .into_iter()
        .filter_map(|message| {
            let mut name = None;
            let mut kind = Kind::Other;
            // Set only when the link's peer is in another network namespace.
            let mut peer_elsewhere = false;
            for attribute in &message.attributes {
                match attribute {
                    LinkAttribute::IfName(n) => name = Some(n.clone()),
                    LinkAttribute::LinkNetNsId(_) => peer_elsewhere = true,
                    LinkAttribute::LinkInfo(infos) => {
                        for info in infos {
                            match info {
                                LinkInfo::Kind(InfoKind::Veth) => kind = Kind::PodVeth,
                                LinkInfo::Kind(InfoKind::Bridge) => kind = Kind::Bridge,
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
            if kind == Kind::PodVeth && !peer_elsewhere {
                kind = Kind::Other;
            }
            Some((message.header.index, Link { name: name?, kind }))
        })
        .collect())
}

/// The interface the kernel routes `pod` through (a lookup, as `ip route get` does).
async fn route_oif(handle: &Handle, pod: IpAddr) -> Result<Option<u32>, rtnetlink::Error> {
    let mut message = RouteMessage::default();
    message.header.address_family = match pod {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    message.header.destination_prefix_length = if pod.is_ipv4() { 32 } else { 128 };
    message
        .attributes
        .push(RouteAttribute::Destination(pod.into()));
    let mut replies = handle.route().get(message).execute();
    match replies.next().await {
        Some(Ok(route)) => Ok(route
            .attributes
            .iter()
            .find_map(|attribute| match attribute {
                RouteAttribute::Oif(index) => Some(*index),
                _ => None,
            })),
        // No route to it: not reachable from this node.
        Some(Err(rtnetlink::Error::NetlinkError(_))) | None => Ok(None),
        Some(Err(err)) => Err(err),
    }
}

/// `(address, interface)` → MAC address, from the IPv4 and IPv6 neighbour tables.
async fn neighbour_macs(
    handle: &Handle,
) -> Result<BTreeMap<(IpAddr, u32), Vec<u8>>, rtnetlink::Error> {
    let mut macs = BTreeMap::new();
    for version in [rtnetlink::IpVersion::V4, rtnetlink::IpVersion::V6] {
        let messages: Vec<NeighbourMessage> = handle
            .neighbours()
            .get()
            .set_family(version)
            .execute()
            .try_collect()
            .await?;
        for message in messages {
            let mut address = None;
            let mut mac = None;
            for attribute in &message.attributes {
                match attribute {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                        address = Some(IpAddr::V4(*v4))
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                        address = Some(IpAddr::V6(*v6))
                    }
                    NeighbourAttribute::LinkLocalAddress(bytes) => mac = Some(bytes.clone()),
                    _ => {}
                }
            }
            if let (Some(address), Some(mac)) = (address, mac) {
                macs.insert((address, message.header.ifindex), mac);
            }
        }
    }
    Ok(macs)
}

/// `(bridge, MAC address)` → the bridge port it was learned on, from the forwarding database.
async fn bridge_ports(handle: &Handle) -> Result<BTreeMap<(u32, Vec<u8>), u32>, rtnetlink::Error> {
    let mut request = handle.neighbours().get();
    request.message_mut().header.family = AddressFamily::Bridge;
    let messages: Vec<NeighbourMessage> = request.execute().try_collect().await?;
    let mut ports = BTreeMap::new();
    for message in messages {
        let mut bridge = None;
        let mut mac = None;
        for attribute in &message.attributes {
            match attribute {
                NeighbourAttribute::Controller(index) => bridge = Some(*index),
                NeighbourAttribute::LinkLocalAddress(bytes) => mac = Some(bytes.clone()),
                _ => {}
            }
        }
        if let (Some(bridge), Some(mac)) = (bridge, mac) {
            ports.insert((bridge, mac), message.header.ifindex);
        }
    }
    Ok(ports)
}

/// Follows the veths of the pods `pods` names, on a task of its own: looks again whenever
/// `pods` changes or netlink reports a link, route or neighbour change, and publishes the
/// veths when they differ. A netlink error is logged and the last veths stay.
pub fn follow(
    mut pods: watch::Receiver<BTreeSet<IpAddr>>,
) -> Result<watch::Receiver<BTreeSet<PodVeth>>, std::io::Error> {
    let (mut connection, handle, mut events) = rtnetlink::new_connection()?;
    let groups = RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE;
    connection
        .socket_mut()
        .socket_mut()
        .bind(&SocketAddr::new(0, groups))?;
    tokio::spawn(connection);
    let (sender, receiver) = watch::channel(BTreeSet::new());
    tokio::spawn(async move {
        let mut before = BTreeMap::new();
        loop {
            let wanted = pods.borrow_and_update().clone();
            match find(&handle, &wanted).await {
                Ok(found) => {
                    before = watched(found, &before, &wanted);
                    let veths: BTreeSet<PodVeth> = before.values().cloned().collect();
                    sender.send_if_modified(|current| {
                        let modified = *current != veths;
                        *current = veths;
                        modified
                    });
                }
                Err(err) => tracing::warn!(
                    error = %crate::error_chain(&err),
                    "finding production pods' veths; the last ones stay watched"
                ),
            }
            tokio::select! {
                changed = pods.changed() => if changed.is_err() { return },
                event = events.next() => if event.is_none() {
                    tracing::error!(
                        "the netlink event stream ended: production pods' veths are no longer followed"
                    );
                    return;
                },
            }
            // Gather the rest of a burst (a pod's veth, address, route and neighbour come
            // together), then look once.
            tokio::time::sleep(SETTLE).await;
            while let Ok(Some(_)) = tokio::time::timeout(Duration::ZERO, events.next()).await {}
        }
    });
    Ok(receiver)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str) -> Link {
        Link {
            name: name.into(),
            kind: Kind::PodVeth,
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_veth_stays_watched_while_its_link_and_its_pod_last() {
        let before = BTreeMap::from([(ip("198.18.4.2"), ("veth1".to_string(), 7))]);
        let pods = BTreeSet::from([ip("198.18.4.2")]);
        // Not found this time (its forwarding entry aged out), but still there.
        let found = Found {
            by_pod: BTreeMap::new(),
            links: BTreeMap::from([(7, link("veth1"))]),
        };
        assert_eq!(watched(found, &before, &pods), before);
        // Its link is gone, or another link took its index, or its pod left: no more.
        for (links, pods) in [
            (BTreeMap::new(), pods.clone()),
            (BTreeMap::from([(7, link("veth2"))]), pods.clone()),
            (BTreeMap::from([(7, link("veth1"))]), BTreeSet::new()),
        ] {
            let found = Found {
                by_pod: BTreeMap::new(),
                links,
            };
            assert!(watched(found, &before, &pods).is_empty());
        }
    }

    #[test]
    fn what_a_look_finds_wins_over_what_was_kept() {
        let before = BTreeMap::from([(ip("198.18.2.2"), ("cali1".to_string(), 7))]);
        let pods = BTreeSet::from([ip("198.18.2.2")]);
        // The pod's veth was re-created under the same name: a new index.
        let found = Found {
            by_pod: BTreeMap::from([(ip("198.18.2.2"), ("cali1".to_string(), 9))]),
            links: BTreeMap::from([(9, link("cali1"))]),
        };
        assert_eq!(
            watched(found, &before, &pods),
            BTreeMap::from([(ip("198.18.2.2"), ("cali1".to_string(), 9))])
        );
    }
}
