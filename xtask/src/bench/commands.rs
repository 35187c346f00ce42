//! The commands the bench ran, one example per kind, for the report: a reader can re-run any
//! step by hand.

use std::{collections::BTreeMap, process::Command};

/// Kind of step → the first command line of that kind.
#[derive(Debug, Default)]
pub struct Commands {
    seen: BTreeMap<String, String>,
}

impl Commands {
    pub fn record(&mut self, kind: &str, cmd: &Command) {
        self.seen
            .entry(kind.to_string())
            .or_insert_with(|| render(cmd));
    }

    pub fn record_text(&mut self, kind: &str, text: &str) {
        self.seen
            .entry(kind.to_string())
            .or_insert_with(|| text.to_string());
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.seen.iter()
    }
}

fn render(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|arg| {
            let arg = arg.to_string_lossy();
            if arg.is_empty() || arg.contains([' ', '"', '\'', '*', '?', '[', '$']) {
                format!("'{}'", arg.replace('\'', r"'\''"))
            } else {
                arg.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
