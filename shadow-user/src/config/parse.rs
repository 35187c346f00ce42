//! Turns YAML documents into Mappings and daemon settings: plain Mapping documents,
//! `getambassador.io/*` resources with `spec:`, Kubernetes Services (also inside a `List`)
//! carrying the `getambassador.io/config` annotation, and the `shadowd` Module.

use std::{path::Path, time::Duration};

use serde_yaml_ng::Value;

use crate::settings::DaemonOptions;

use super::{
    documents::{self, Document, SyntaxError},
    fields::Fields,
    mapping::{Criteria, Diagnostics, HeaderMatch, Mapping, Origin},
    service, wire,
};

/// Mapping API versions accepted: Ambassador's and Emissary's.
const API_VERSIONS: &[&str] = &[
    "ambassador/v0",
    "ambassador/v1",
    "ambassador/v2",
    "getambassador.io/v2",
    "getambassador.io/v3alpha1",
];
/// The Service annotation that holds Mapping documents.
pub const ANNOTATION: &str = "getambassador.io/config";
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(3000);

/// Fields of a Mapping shadowd reads; others get a notice.
const MAPPING_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "name",
    "namespace",
    "metadata",
    "spec",
    "prefix",
    "prefix_regex",
    "case_sensitive",
    "service",
    "shadow",
    "weight",
    "host",
    "host_regex",
    "method",
    "headers",
    "regex_headers",
    "precedence",
    "rewrite",
    "host_rewrite",
    "add_request_headers",
    "remove_request_headers",
    "timeout_ms",
    "disable_shadow_host_suffix_append",
    "ambassador_id",
    "diff",
];

/// What the documents of all sources produced.
#[derive(Debug, Default)]
pub struct Resources {
    pub mappings: Vec<Mapping>,
    pub module: Option<DaemonOptions>,
    /// The first problem with a `shadowd` Module: its settings cannot be partly applied.
    pub module_error: Option<String>,
    pub diagnostics: Diagnostics,
}

/// One YAML source: a file, or an annotation inside a file.
struct Source<'a> {
    path: &'a Path,
    /// How errors name it: the file, or the annotation of a Service in it.
    label: String,
    /// Namespace of Mappings that do not set one.
    namespace: Option<String>,
    /// What the rkeys of its documents are named after, as Emissary's fetcher names them:
    /// the file's name, or `<service>.<namespace>` of the Service whose annotation it is.
    rkey_base: String,
    /// An annotation's documents are named after the Service even when one is written as
    /// a custom resource.
    annotation: bool,
}

impl Source<'_> {
    /// The rkey of a resource of this source: `<name>.<namespace>` for a custom resource
    /// (`metadata` naming it) read from a file, else `<rkey_base>.<n>`, `n` the document's
    /// number in the source, from 1.
    fn rkey(&self, document: &Document, value: &Value) -> String {
        let metadata = value.get("metadata");
        let field = |key: &str| metadata.and_then(|m| m.get(key)).and_then(Value::as_str);
        match field("name") {
            Some(name) if !self.annotation => {
                let namespace = field("namespace")
                    .or(self.namespace.as_deref())
                    .unwrap_or("default");
                format!("{name}.{namespace}")
            }
            _ => format!("{}.{}", self.rkey_base, document.number),
        }
    }
}

/// Reads every resource of the YAML `text` of file `path`.
pub fn file(path: &Path, text: &str, out: &mut Resources) -> Result<(), SyntaxError> {
    let source = Source {
        path,
        label: path.display().to_string(),
        namespace: None,
        rkey_base: path.file_name().map_or_else(
            || path.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        ),
        annotation: false,
    };
    for document in documents::split(text, 0)? {
        resource(&source, &document, &document.value, out)?;
    }
    Ok(())
}

fn resource(
    source: &Source<'_>,
    document: &Document,
    value: &Value,
    out: &mut Resources,
) -> Result<(), SyntaxError> {
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    match kind {
        "Mapping" => mapping(source, document, value, out),
        "Service" => service_annotation(source, document, value, out)?,
        "List" => {
            for item in value
                .get("items")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                resource(source, document, item, out)?;
            }
        }
        "Module" => module(source, document, value, out),
        "" if value.is_null() => {}
        other => out.diagnostics.notice(
            "",
            format!(
                "{}, document {}: kind {} ignored",
                source.label,
                document.number,
                if other.is_empty() { "(none)" } else { other }
            ),
        ),
    }
    Ok(())
}

/// The Mapping documents in a Service's `getambassador.io/config` annotation.
fn service_annotation(
    source: &Source<'_>,
    document: &Document,
    value: &Value,
    out: &mut Resources,
) -> Result<(), SyntaxError> {
    let metadata = value.get("metadata");
    let Some(text) = metadata
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(ANNOTATION))
        .and_then(Value::as_str)
    else {
        return Ok(());
    };
    let service_name = metadata
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("?");
    let namespace = metadata
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .map(str::to_string);
    // Block-scalar content starts on the line after the annotation key.
    let key_line = documents::field_line(document, &format!("{ANNOTATION:?}"))
        .min(documents::field_line(document, ANNOTATION));
    let inner = Source {
        path: source.path,
        label: format!(
            "{} (annotation {ANNOTATION} of Service {service_name})",
            source.label
        ),
        rkey_base: format!(
            "{service_name}.{}",
            namespace.as_deref().unwrap_or("default")
        ),
        namespace,
        annotation: true,
    };
    let docs = documents::split(text, key_line).map_err(|mut err| {
        err.message = format!("in {}: {}", inner.label, err.message);
        err
    })?;
    for doc in docs {
        resource(&inner, &doc, &doc.value, out)?;
    }
    Ok(())
}

fn module(source: &Source<'_>, document: &Document, value: &Value, out: &mut Resources) {
    let spec = value.get("spec").unwrap_or(value);
    let name = value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .or_else(|| value.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if name != "shadowd" {
        out.diagnostics.notice(
            "",
            format!(
                "{}, document {}: Module {name} is not for shadowd, ignored",
                source.label, document.number
            ),
        );
        return;
    }
    let rkey = source.rkey(document, value);
    let config = spec.get("config").cloned().unwrap_or(Value::Null);
    // A Module error makes the whole configuration unusable (`ConfigError::Module`).
    let unusable = |out: &mut Resources, field: &str, problem: &str| {
        let message = format!(
            "{}, document {}, line {}: field {field}: {problem}",
            source.label,
            document.number,
            documents::field_line(document, "config")
        );
        out.module_error.get_or_insert(message.clone());
        out.diagnostics.error(&rkey, message);
    };
    let config = if config.is_null() {
        Value::Mapping(Default::default())
    } else {
        config
    };
    // A misspelt option must not be silently ignored.
    let known = DaemonOptions::field_names();
    let unknown: Vec<String> = config
        .as_mapping()
        .into_iter()
        .flat_map(|fields| fields.keys())
        .map(|key| {
            key.as_str()
                .map_or_else(|| format!("{key:?}"), str::to_string)
        })
        .filter(|name| !known.contains(name))
        .map(|name| format!("`{name}`"))
        .collect();
    if !unknown.is_empty() {
        unusable(
            out,
            "config",
            &format!("unknown field {}", unknown.join(", ")),
        );
        return;
    }
    match serde_yaml_ng::from_value::<DaemonOptions>(config) {
        Ok(settings) => {
            // Field names the Module removes from copies: a typo would silently remove
            // nothing, so a name that cannot be a field is an error.
            let bad_name = settings
                .remove_request_headers
                .iter()
                .flatten()
                .find_map(|name| wire::header_name(name).err());
            if let Some(problem) = bad_name {
                unusable(out, "config.remove_request_headers", &problem);
            } else if out.module.is_some() {
                out.diagnostics.error(
                    &rkey,
                    format!(
                        "{}, document {}: a second shadowd Module, ignored",
                        source.label, document.number
                    ),
                );
                out.module_error.get_or_insert_with(|| {
                    format!(
                        "{}, document {}: a second shadowd Module",
                        source.label, document.number
                    )
                });
            } else {
                out.module = Some(settings);
            }
        }
        Err(err) => unusable(out, "config", &err.to_string()),
    }
}

fn mapping(source: &Source<'_>, document: &Document, value: &Value, out: &mut Resources) {
    let d = &mut out.diagnostics;
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let label = &source.label;
    if !API_VERSIONS.contains(&api_version) {
        d.error(
            "",
            format!("{label}, document {}, line {}: field apiVersion: Mapping apiVersion {api_version:?} is not one of {}", document.number, documents::field_line(document, "apiVersion"), API_VERSIONS.join(", ")),
        );
        return;
    }
    // getambassador.io resources keep their fields under `spec` and the name in `metadata`.
    let metadata = value.get("metadata");
    let body = value
        .get("spec")
        .filter(|s| s.is_mapping())
        .unwrap_or(value);
    let Some(map) = body.as_mapping() else {
        d.error(
            "",
            format!(
                "{label}, document {}: a Mapping must be a map",
                document.number
            ),
        );
        return;
    };
    let meta_str = |key: &str| {
        metadata
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let name =
        meta_str("name").or_else(|| map.get("name").and_then(Value::as_str).map(str::to_string));
    let namespace = map
        .get("namespace")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| meta_str("namespace"))
        .or_else(|| source.namespace.clone())
        .unwrap_or_else(|| "default".into());
    let rkey = source.rkey(document, value);
    let mut f = Fields::new(
        map,
        document,
        label,
        if name.is_some() { &rkey } else { "" },
    );
    if name.is_none() {
        f.error(d, "name", "required field is missing");
        return;
    }
    f.unknown(d, MAPPING_FIELDS, "Mapping");

    let prefix = f.required_string(d, "prefix");
    let service = f
        .required_string(d, "service")
        .and_then(|text| match service::parse(&text) {
            Ok(service) => Some(service),
            Err(err) => {
                f.error(d, "service", &err.to_string());
                None
            }
        });
    let weight = weight(&mut f, d);
    let timeout = timeout(&mut f, d);
    let (headers, regex_headers) = header_criteria(&mut f, d);
    let edits = copy_edits(&mut f, d);
    let diff = super::diff::settings(&mut f, d);

    let mapping = Mapping {
        name: name.unwrap_or_default(),
        namespace,
        rkey: rkey.clone(),
        origin: Origin {
            file: source.path.to_path_buf(),
            document: document.number,
            line: document.first_line,
        },
        criteria: Criteria {
            prefix: prefix.unwrap_or_default(),
            prefix_regex: f.boolean(d, "prefix_regex", false),
            case_sensitive: f.boolean(d, "case_sensitive", true),
            method: f.string(d, "method"),
            host: f.string(d, "host"),
            host_regex: f.boolean(d, "host_regex", false),
            headers,
            regex_headers,
            precedence: f.integer(d, "precedence").unwrap_or(0),
        },
        service: service.unwrap_or_else(|| super::mapping::Service {
            scheme: super::mapping::Scheme::Http,
            host: String::new(),
            port: 80,
        }),
        shadow: f.boolean(d, "shadow", false),
        weight,
        rewrite: edits.rewrite,
        host_rewrite: edits.host_rewrite,
        add_request_headers: edits.add_request_headers,
        remove_request_headers: edits.remove_request_headers,
        timeout,
        disable_shadow_host_suffix_append: f.boolean(d, "disable_shadow_host_suffix_append", false),
        diff,
    };
    if !f.failed {
        out.mappings.push(mapping);
    }
}

/// `weight`: a percentage, 100 when absent.
fn weight(f: &mut Fields<'_>, d: &mut Diagnostics) -> u8 {
    match f.integer(d, "weight") {
        Some(w) if (0..=100).contains(&w) => w as u8,
        Some(w) => {
            f.error(d, "weight", &format!("{w} is outside 0-100"));
            100
        }
        None => 100,
    }
}

/// `timeout_ms`, [`DEFAULT_TIMEOUT`] when absent.
fn timeout(f: &mut Fields<'_>, d: &mut Diagnostics) -> Duration {
    match f.integer(d, "timeout_ms") {
        Some(ms) if ms >= 0 => Duration::from_millis(ms as u64),
        Some(ms) => {
            f.error(d, "timeout_ms", &format!("{ms} is negative"));
            DEFAULT_TIMEOUT
        }
        None => DEFAULT_TIMEOUT,
    }
}

/// `headers` and `regex_headers` of a Mapping.
type HeaderCriteria = (Vec<(String, HeaderMatch)>, Vec<(String, String)>);

/// `headers` and `regex_headers`, with lower-case names, sorted: the same criteria however
/// they were written.
fn header_criteria(f: &mut Fields<'_>, d: &mut Diagnostics) -> HeaderCriteria {
    let mut headers: Vec<(String, HeaderMatch)> = f
        .string_map(d, "headers", true)
        .into_iter()
        .map(|(name, value)| {
            (
                name.to_ascii_lowercase(),
                value.map_or(HeaderMatch::Present, HeaderMatch::Exact),
            )
        })
        .collect();
    headers.sort();
    let mut regex_headers: Vec<(String, String)> = f
        .string_map(d, "regex_headers", false)
        .into_iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.unwrap_or_default()))
        .collect();
    regex_headers.sort();
    (headers, regex_headers)
}

/// What a shadow Mapping changes in its copies.
struct CopyEdits {
    rewrite: Option<String>,
    host_rewrite: Option<String>,
    add_request_headers: Vec<(String, String)>,
    remove_request_headers: Vec<String>,
}

/// The copy edits, each checked: they become bytes of the copy's head, and nothing in them
/// may end a line.
fn copy_edits(f: &mut Fields<'_>, d: &mut Diagnostics) -> CopyEdits {
    let edits = CopyEdits {
        add_request_headers: f
            .string_map(d, "add_request_headers", false)
            .into_iter()
            .map(|(name, value)| (name, value.unwrap_or_default()))
            .collect(),
        remove_request_headers: f.string_list(d, "remove_request_headers"),
        rewrite: f.string(d, "rewrite"),
        host_rewrite: f.string(d, "host_rewrite"),
    };
    let checked = edits
        .add_request_headers
        .iter()
        .map(|(name, value)| ("add_request_headers", wire::header_field(name, value)))
        .chain(
            edits
                .remove_request_headers
                .iter()
                .map(|name| ("remove_request_headers", wire::header_name(name))),
        )
        .chain(
            edits
                .rewrite
                .iter()
                .map(|value| ("rewrite", wire::path(value))),
        )
        .chain(
            edits
                .host_rewrite
                .iter()
                .map(|value| ("host_rewrite", wire::host(value))),
        );
    for (field, problem) in checked.filter_map(|(field, result)| Some((field, result.err()?))) {
        f.error(d, field, &problem);
    }
    edits
}
