//! The table as `shadowd check` prints it: one block per group, in match order.

use std::fmt;

use super::{RouteTable, plan::Group};

impl fmt::Display for RouteTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.groups.is_empty() && self.unrouted.is_empty() {
            return writeln!(f, "no mappings");
        }
        for (i, group) in self.groups.iter().enumerate() {
            writeln!(f, "{}. group {}", i + 1, group.rkey)?;
            write_group(f, group)?;
        }
        for group in &self.unrouted {
            writeln!(
                f,
                "-. group {} (no production mapping: matches nothing)",
                group.rkey
            )?;
            write_group(f, group)?;
        }
        Ok(())
    }
}

fn write_group(f: &mut fmt::Formatter<'_>, group: &Group) -> fmt::Result {
    writeln!(f, "   match:      {}", group.criteria)?;
    for production in &group.production {
        writeln!(
            f,
            "   production: {} -> {}",
            production.name, production.service
        )?;
    }
    match &group.shadow {
        Some(shadow) => {
            write!(
                f,
                "   shadow:     {} -> {}, weight {}%",
                shadow.name, shadow.service, shadow.weight
            )?;
            if let Some(rewrite) = &shadow.rewrite {
                write!(f, ", rewrite {}", rewrite.replacement)?;
            }
            if let Some(host) = &shadow.host_rewrite {
                write!(f, ", host_rewrite {host}")?;
            }
            if !shadow.append_suffix {
                write!(f, ", no Host suffix")?;
            }
            writeln!(f)
        }
        None => writeln!(f, "   shadow:     none (not copied)"),
    }
}
