//! Why a Mapping builds no route. Each error is filed in the diagnostics under an rkey.

/// A Mapping the route table turned away; the rest of the configuration still builds.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// A group already has a shadow: only one per group, the first in rkey order.
    #[error("cannot accept {new} as second shadow after {first}")]
    SecondShadow {
        /// Name of the rejected shadow Mapping.
        new: String,
        /// Name of the group's shadow Mapping.
        first: String,
    },
    /// A field holds a regex that does not compile.
    #[error("invalid regex in {field}")]
    InvalidRegex {
        /// The field, as written in the Mapping (`prefix`, `host`, `regex_headers.x-name`).
        field: String,
        /// What the regex crate said.
        #[source]
        source: regex::Error,
    },
    /// Another Mapping of the same namespace, earlier in rkey order, has this name.
    #[error("duplicate Mapping name {name} in namespace {namespace}: {first_rkey} already has it")]
    DuplicateName {
        /// The Mapping name.
        name: String,
        /// The namespace both Mappings are in.
        namespace: String,
        /// The rkey of the Mapping that keeps the name.
        first_rkey: String,
    },
}

impl RouteError {
    /// The error and its sources on one line, as diagnostics show them. The regex crate's
    /// messages span several lines, with a caret line under the pattern: those lines are
    /// joined and the caret lines dropped.
    pub fn to_diagnostic(&self) -> String {
        crate::error_chain(self)
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.chars().all(|c| matches!(c, '^' | '-')))
            .collect::<Vec<_>>()
            .join(" ")
    }
}
