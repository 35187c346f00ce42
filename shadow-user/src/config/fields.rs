//! Typed reads of one resource's fields out of a YAML mapping, with errors that name the
//! file, document, line and field, and notices for fields shadowd does not know.

use serde_yaml_ng::{Mapping as YamlMap, Value};

use super::{
    documents::{Document, field_line},
    mapping::Diagnostics,
};

/// The fields of one resource and where to report problems with them.
pub struct Fields<'a> {
    pub map: &'a YamlMap,
    pub document: &'a Document,
    pub file: &'a str,
    pub rkey: &'a str,
    /// Set once any error was reported: the resource builds nothing.
    pub failed: bool,
}

impl<'a> Fields<'a> {
    pub fn new(map: &'a YamlMap, document: &'a Document, file: &'a str, rkey: &'a str) -> Self {
        Fields {
            map,
            document,
            file,
            rkey,
            failed: false,
        }
    }

    /// `<file>, document <n>, line <l>: field <field>: <problem>`.
    pub fn error(&mut self, diagnostics: &mut Diagnostics, field: &str, problem: &str) {
        let line = field_line(self.document, field);
        diagnostics.error(
            self.rkey,
            format!(
                "{}, document {}, line {line}: field {field}: {problem}",
                self.file, self.document.number
            ),
        );
        self.failed = true;
    }

    pub fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    pub fn string(&mut self, d: &mut Diagnostics, field: &str) -> Option<String> {
        match self.get(field)? {
            Value::String(s) => Some(s.clone()),
            // YAML reads `prefix: 1` or `host: true` as non-strings; Ambassador takes scalars.
            Value::Number(n) => Some(n.to_string()),
            _ => {
                self.error(d, field, "expected a string");
                None
            }
        }
    }

    pub fn required_string(&mut self, d: &mut Diagnostics, field: &str) -> Option<String> {
        let value = self.string(d, field);
        if value.is_none() && self.get(field).is_none() {
            self.error(d, field, "required field is missing");
        }
        value
    }

    pub fn boolean(&mut self, d: &mut Diagnostics, field: &str, default: bool) -> bool {
        match self.get(field) {
            None => default,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
            Some(_) => {
                self.error(d, field, "expected true or false");
                default
            }
        }
    }

    pub fn integer(&mut self, d: &mut Diagnostics, field: &str) -> Option<i64> {
        match self.get(field)? {
            Value::Number(n) if n.as_i64().is_some() => n.as_i64(),
            Value::String(s) if s.trim().parse::<i64>().is_ok() => s.trim().parse().ok(),
            _ => {
                self.error(d, field, "expected an integer");
                None
            }
        }
    }

    /// A map of header name to string (or, with `allow_true`, `true` for presence).
    pub fn string_map(
        &mut self,
        d: &mut Diagnostics,
        field: &str,
        allow_true: bool,
    ) -> Vec<(String, Option<String>)> {
        let Some(value) = self.get(field) else {
            return Vec::new();
        };
        let Value::Mapping(map) = value else {
            self.error(d, field, "expected a map of header names to values");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, value) in map {
            let Some(name) = key.as_str() else {
                self.error(d, field, "header names must be strings");
                continue;
            };
            let value = match value {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(true) if allow_true => None,
                // add_request_headers also takes `{value: ..., append: ...}`.
                Value::Mapping(inner) if !allow_true => match inner.get("value") {
                    Some(Value::String(s)) => Some(s.clone()),
                    _ => {
                        self.error(d, field, &format!("{name}: expected a string value"));
                        continue;
                    }
                },
                _ => {
                    self.error(d, field, &format!("{name}: expected a string value"));
                    continue;
                }
            };
            out.push((name.to_string(), value));
        }
        out
    }

    /// A list of strings (a single string is taken as a one-item list).
    pub fn string_list(&mut self, d: &mut Diagnostics, field: &str) -> Vec<String> {
        match self.get(field) {
            None => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Sequence(items)) => {
                let mut out = Vec::new();
                for item in items {
                    match item.as_str() {
                        Some(s) => out.push(s.to_string()),
                        None => self.error(d, field, "expected a list of strings"),
                    }
                }
                out
            }
            Some(_) => {
                self.error(d, field, "expected a list of strings");
                Vec::new()
            }
        }
    }

    /// Notices for every key not in `known`.
    pub fn unknown(&self, d: &mut Diagnostics, known: &[&str], what: &str) {
        for key in self.map.keys() {
            let name = key
                .as_str()
                .map_or_else(|| format!("{key:?}"), str::to_string);
            if !known.contains(&name.as_str()) {
                d.notice(
                    self.rkey,
                    format!(
                        "{}, document {}, line {}: unknown {what} field {name} ignored",
                        self.file,
                        self.document.number,
                        field_line(self.document, &name)
                    ),
                );
            }
        }
    }
}
