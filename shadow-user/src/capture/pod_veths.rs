//! `interfaces: auto`: finds the host side of the veth of each production pod on this node,
//! and follows them as pods come and go. A pod's address is looked up in the kernel's
//! routing table (a CNI that routes each pod, as Calico and Cilium do, has a route through
//! its `cali*`/`lxc*` veth); when the route goes through a bridge (the bridge plugin's
//! `cni0`), the pod's MAC address from the neighbour table names the bridge port in the
//! bridge's forwarding database. Netlink link, route and neighbour events, not polling,
//! say when to look again.

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

/// What a link is, as far as finding pods goes.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Link {
    name: String,
    kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Veth,
    Bridge,
    Other,
}

/// The interfaces of the node's links that lead to `pods`, by name.
pub async fn find(
    handle: &Handle,
    pods: &BTreeSet<IpAddr>,
) -> Result<BTreeSet<String>, rtnetlink::Error> {
    if pods.is_empty() {
        return Ok(BTreeSet::new());
    }
    let links = links(handle).await?;
    let mut found = BTreeSet::new();
    let mut bridged: Vec<(IpAddr, u32)> = Vec::new();
    for pod in pods {
        let Some(oif) = route_oif(handle, *pod).await? else {
            continue;
        };
        match links.get(&oif).map(|link| link.kind) {
            Some(Kind::Veth) => {
                found.insert(links[&oif].name.clone());
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
            if let Some(link) = port.and_then(|port| links.get(port))
                && link.kind == Kind::Veth
            {
                found.insert(link.name.clone());
            }
        }
    }
    Ok(found)
}

/// Every link by index, with its name and kind.
async fn links(handle: &Handle) -> Result<BTreeMap<u32, Link>, rtnetlink::Error> {
    let messages: Vec<LinkMessage> = handle.link().get().execute().try_collect().await?;
    Ok(messages
        .into_iter()
        .filter_map(|message| {
            let mut name = None;
            let mut kind = Kind::Other;
            for attribute in &message.attributes {
                match attribute {
                    LinkAttribute::IfName(n) => name = Some(n.clone()),
                    LinkAttribute::LinkInfo(infos) => {
                        for info in infos {
                            match info {
                                LinkInfo::Kind(InfoKind::Veth) => kind = Kind::Veth,
                                LinkInfo::Kind(InfoKind::Bridge) => kind = Kind::Bridge,
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
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
/// names when they differ. A netlink error is logged and the last names stay.
pub fn follow(
    mut pods: watch::Receiver<BTreeSet<IpAddr>>,
) -> Result<watch::Receiver<BTreeSet<String>>, std::io::Error> {
    let (mut connection, handle, mut events) = rtnetlink::new_connection()?;
    let groups = RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE;
    connection
        .socket_mut()
        .socket_mut()
        .bind(&SocketAddr::new(0, groups))?;
    tokio::spawn(connection);
    let (sender, receiver) = watch::channel(BTreeSet::new());
    tokio::spawn(async move {
        loop {
            let wanted = pods.borrow_and_update().clone();
            match find(&handle, &wanted).await {
                Ok(found) => {
                    sender.send_if_modified(|current| {
                        let modified = *current != found;
                        *current = found;
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
                event = events.next() => if event.is_none() { return },
            }
            // Gather the rest of a burst (a pod's veth, address, route and neighbour come
            // together), then look once.
            tokio::time::sleep(SETTLE).await;
            while let Ok(Some(_)) = tokio::time::timeout(Duration::ZERO, events.next()).await {}
        }
    });
    Ok(receiver)
}
