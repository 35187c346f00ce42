//! Production credentials in copies. Ambassador mirrors every header, so by default a copy
//! carries the client's `Authorization` and `Cookie` to a test service. The Module's
//! `remove_request_headers` removes fields from every copy, and each shadow whose copies
//! still carry credentials gets a notice, so the choice shows in `shadowd check` and `/diag`.

use super::RouteTable;
use crate::config::Diagnostics;

/// Header fields that carry a client's credentials.
pub const CREDENTIAL_FIELDS: [&str; 3] = ["Authorization", "Cookie", "Proxy-Authorization"];

impl RouteTable {
    /// Removes the fields `names` from every copy, after each shadow Mapping's own removals.
    pub fn remove_from_every_copy(&mut self, names: &[String]) {
        for plan in self.shadow_plans_mut() {
            for name in names {
                if !plan
                    .remove_request_headers
                    .iter()
                    .any(|removed| removed.eq_ignore_ascii_case(name))
                {
                    plan.remove_request_headers.push(name.clone());
                }
            }
        }
    }

    /// A notice for every shadow whose copies keep credential fields.
    pub fn notice_credentials(&self, diagnostics: &mut Diagnostics) {
        for plan in self.groups.iter().filter_map(|group| group.shadow.as_ref()) {
            let kept: Vec<&str> = CREDENTIAL_FIELDS
                .into_iter()
                .filter(|field| {
                    !plan
                        .remove_request_headers
                        .iter()
                        .any(|removed| removed.eq_ignore_ascii_case(field))
                })
                .collect();
            if !kept.is_empty() {
                diagnostics.notice(
                    &plan.rkey,
                    format!(
                        "shadow {} receives production credentials ({}) in its copies, as \
                         Ambassador's shadows do: list them in its remove_request_headers, or \
                         in the shadowd Module's, to keep them from the test service",
                        plan.name,
                        kept.join(", ")
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::tests::{build, mapping, shadow};

    #[test]
    fn module_removals_reach_every_copy_and_credential_notices_follow_them() {
        let mut own = shadow("b-shadow", "/b/", "b-test");
        own.remove_request_headers = vec!["cookie".into()];
        let (mut table, _) = build(&[
            mapping("a", "/a/", "a"),
            shadow("a-shadow", "/a/", "a-test"),
            mapping("b", "/b/", "b"),
            own,
        ]);
        let mut before = Diagnostics::default();
        table.notice_credentials(&mut before);
        let notices: Vec<&str> = before.notices.iter().map(|(_, m)| m.as_str()).collect();
        assert_eq!(notices.len(), 2, "{notices:?}");
        assert!(notices.iter().any(|n| n.starts_with(
            "shadow a-shadow receives production credentials (Authorization, Cookie, Proxy-Authorization)"
        )));
        assert!(notices.iter().any(|n| n.starts_with(
            "shadow b-shadow receives production credentials (Authorization, Proxy-Authorization)"
        )));

        table.remove_from_every_copy(&[
            "Authorization".into(),
            "COOKIE".into(),
            "Proxy-Authorization".into(),
        ]);
        let removed: Vec<Vec<String>> = table
            .groups
            .iter()
            .filter_map(|g| g.shadow.as_ref())
            .map(|plan| plan.remove_request_headers.clone())
            .collect();
        assert!(removed.contains(&vec![
            "Authorization".to_owned(),
            "COOKIE".to_owned(),
            "Proxy-Authorization".to_owned()
        ]));
        assert!(
            removed.contains(&vec![
                "cookie".to_owned(),
                "Authorization".to_owned(),
                "Proxy-Authorization".to_owned()
            ]),
            "a field the shadow removes already is not listed twice: {removed:?}"
        );
        let mut after = Diagnostics::default();
        table.notice_credentials(&mut after);
        assert!(after.notices.is_empty(), "{:?}", after.notices);
    }
}
