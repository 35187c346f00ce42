//! Building the table from loaded Mappings: rkey order, grouping, one
//! shadow per group, and a diagnostic for everything turned away or worth knowing.

use std::collections::{HashMap, hash_map::Entry};

use super::{
    RouteTable,
    criteria::Criteria,
    error::RouteError,
    matcher::Matcher,
    plan::{Group, Production, ShadowPlan},
    prefilter::Prefilter,
};
use crate::config::{Diagnostics, Mapping};

impl RouteTable {
    /// Builds the table. Mappings are taken in rkey order; each one turned away is an error
    /// in `diagnostics` and builds nothing, and the rest still build.
    pub fn build(mappings: &[Mapping], diagnostics: &mut Diagnostics) -> Self {
        let mut sorted: Vec<&Mapping> = mappings.iter().collect();
        sorted.sort_by(|a, b| a.rkey.cmp(&b.rkey));
        let mut builder = Builder::default();
        for mapping in sorted {
            if let Err((rkey, error)) = builder.add(mapping) {
                diagnostics.error(rkey, error.to_diagnostic());
            }
        }

        // A production rewrite only matters where there is a copy it does not reach.
        for (group, mapping) in builder.rewrites {
            let Some(shadow) = &builder.groups[group].shadow else {
                continue;
            };
            let copy = match &shadow.rewrite {
                None => "the copy keeps the captured target".to_owned(),
                Some(own) => format!(
                    "the copy gets only the shadow's rewrite {}",
                    own.replacement
                ),
            };
            diagnostics.notice(
                &mapping.rkey,
                format!(
                    "rewrite {} of production mapping {} is not applied: shadowd does not \
                     rewrite production, and {copy}",
                    mapping.rewrite.as_deref().unwrap_or_default(),
                    mapping.name
                ),
            );
        }
        let (mut groups, unrouted): (Vec<_>, Vec<_>) = builder
            .groups
            .into_iter()
            .partition(|g| !g.production.is_empty());
        for group in &unrouted {
            diagnostics.notice(
                &group.rkey,
                format!(
                    "group {} has a shadow but no production mapping: nothing is shadowed",
                    group.rkey
                ),
            );
        }
        // Stable: groups that tie keep creation order, which is rkey order.
        groups.sort_by(|a, b| a.criteria.match_order(&b.criteria));
        let prefilter = Prefilter::new(&groups);
        Self {
            groups,
            unrouted,
            prefilter,
        }
    }
}

/// Groups in creation order, and what is needed to decide on the next Mapping.
#[derive(Default)]
struct Builder<'m> {
    groups: Vec<Group>,
    by_criteria: HashMap<Criteria, usize>,
    /// `(namespace, name)` → rkey of the Mapping that has it.
    names: HashMap<(&'m str, &'m str), &'m str>,
    /// Production Mappings with a rewrite, and their group.
    rewrites: Vec<(usize, &'m Mapping)>,
}

impl<'m> Builder<'m> {
    /// Adds `mapping` to its group, or says under which rkey to file why not.
    fn add(&mut self, mapping: &'m Mapping) -> Result<(), (String, RouteError)> {
        let rejected = |error| (mapping.rkey.clone(), error);
        let key = (mapping.namespace.as_str(), mapping.name.as_str());
        if let Some(first) = self.names.get(&key) {
            return Err(rejected(RouteError::DuplicateName {
                name: mapping.name.clone(),
                namespace: mapping.namespace.clone(),
                first_rkey: (*first).to_owned(),
            }));
        }
        self.names.insert(key, &mapping.rkey);

        let criteria = Criteria::of(mapping);
        let index = match self.by_criteria.entry(criteria) {
            Entry::Occupied(entry) => *entry.get(),
            Entry::Vacant(entry) => {
                // Equal criteria compile alike, so only a new group's regexes can fail.
                let matcher = Matcher::new(entry.key()).map_err(rejected)?;
                self.groups.push(Group {
                    rkey: mapping.rkey.clone(),
                    criteria: entry.key().clone(),
                    production: Vec::new(),
                    shadow: None,
                    matcher,
                });
                *entry.insert(self.groups.len() - 1)
            }
        };
        let group = &mut self.groups[index];
        if !mapping.shadow {
            group.production.push(Production::of(mapping));
            if mapping.rewrite.as_ref().is_some_and(|r| !r.is_empty()) {
                self.rewrites.push((index, mapping));
            }
            return Ok(());
        }
        if let Some(first) = &group.shadow {
            let error = RouteError::SecondShadow {
                new: mapping.name.clone(),
                first: first.name.clone(),
            };
            return Err((group.rkey.clone(), error));
        }
        group.shadow = Some(ShadowPlan::of(mapping, &group.criteria));
        Ok(())
    }
}
