//! Which Mapping group a captured request belongs to, and where its shadow copy goes
//! (README, "Groups" and "Replay").
//!
//! [`RouteTable::build`] groups the loaded Mappings as Ambassador does, keeps one shadow per
//! group and files every rejection in the diagnostics. [`RouteTable::route`] finds the
//! group a request matches first, as one Ambassador listener would; the request is copied
//! only when that group has a [`ShadowPlan`].

mod build;
mod credentials;
mod criteria;
mod describe;
mod error;
mod matcher;
mod plan;
mod prefilter;
mod request;

#[cfg(test)]
pub(crate) mod tests;

pub use criteria::Criteria;
pub use error::RouteError;
pub use plan::{Group, PathRewrite, Production, RewriteScope, ShadowPlan, shadow_host};
pub use request::{RequestParts, RequestView, Target};

use matcher::Req;
use prefilter::Prefilter;

/// The groups that requests are matched against, in match order.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// Groups with at least one production Mapping, in match order.
    groups: Vec<Group>,
    /// Groups with only a shadow: Ambassador builds no route for them, so they match
    /// nothing.
    unrouted: Vec<Group>,
    prefilter: Prefilter,
}

impl RouteTable {
    /// The first group, in match order, whose criteria `request` meets; `None` if there is
    /// none. The request is copied only if the group has a shadow. Allocates nothing
    /// (unless a header that appears more than once must match a regex).
    pub fn route<R: RequestView + ?Sized>(&self, request: &R) -> Option<&Group> {
        Some(&self.groups[self.route_position(request)?])
    }

    /// Like [`RouteTable::route`], but the group's position in [`RouteTable::groups`], so a
    /// caller can refer to it later without holding a borrow.
    pub fn route_position<R: RequestView + ?Sized>(&self, request: &R) -> Option<usize> {
        self.prefilter.first_match(&self.groups, &Req::new(request))
    }

    /// The same answer as [`RouteTable::route`], by trying every group in turn: the
    /// reference its index is checked against, and the benchmark's baseline.
    pub fn route_linear<R: RequestView + ?Sized>(&self, request: &R) -> Option<&Group> {
        let req = Req::new(request);
        self.groups.iter().find(|group| group.matches_req(&req))
    }

    /// The groups that take part in matching, in match order.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// Groups with a shadow but no production Mapping: they match nothing.
    pub fn unrouted(&self) -> &[Group] {
        &self.unrouted
    }

    /// The production Mappings of groups with a shadow, in match order: their services
    /// receive the traffic worth capturing.
    pub fn shadowed_production(&self) -> impl Iterator<Item = &Production> {
        self.groups
            .iter()
            .filter(|group| group.shadow.is_some())
            .flat_map(|group| &group.production)
    }
}

impl Group {
    /// Whether `request` meets this group's criteria, regardless of other groups.
    pub fn matches<R: RequestView + ?Sized>(&self, request: &R) -> bool {
        self.matches_req(&Req::new(request))
    }

    fn matches_req<R: RequestView + ?Sized>(&self, req: &Req<'_, R>) -> bool {
        self.matcher.matches(&self.criteria, req)
    }
}
