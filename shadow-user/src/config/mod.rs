//! Configuration: Ambassador Mapping YAML (plain documents, `getambassador.io` resources,
//! Service annotations, directories) and the `shadowd` Module, loaded into typed Mappings and
//! settings with `[rkey, message]` errors and notices.
//!
//! Loading fails as a whole ([`ConfigError`]) only when a source cannot be read or is not
//! YAML; every other problem is a diagnostic and the rest of the configuration still loads,
//! as Ambassador does.

pub mod diff;
mod documents;
mod fields;
pub mod mapping;
mod parse;
pub mod service;
mod wire;

#[cfg(test)]
mod tests;

use std::{
    io,
    path::{Path, PathBuf},
};

pub use mapping::{Criteria, Diagnostics, HeaderMatch, Mapping, Origin, Scheme, Service};
pub use parse::ANNOTATION;

/// A resource read from the cluster (an annotated Service, a Mapping), as YAML, with what it
/// is shown as in diagnostics (`Service default/myservice`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterDocument {
    /// Kind, namespace and name.
    pub source: String,
    /// The resource, reduced to what the parser reads.
    pub yaml: String,
}

/// A configuration that cannot be used at all.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A configuration file or directory could not be read.
    #[error("reading {path}")]
    Read {
        /// What was read.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// A document is not YAML.
    #[error("{path}, document {document}, line {line}: not valid YAML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The document in the file, from 1.
        document: usize,
        /// The line in the file.
        line: usize,
        /// What the YAML parser said.
        message: String,
    },
    /// A directory without configuration files.
    #[error("no configuration files in {path} (looked for *.yaml and *.yml)")]
    Empty {
        /// The directory.
        path: PathBuf,
    },
    /// Daemon settings are all or nothing: half a Module could move the admin server or
    /// lose the interfaces without anyone noticing.
    #[error("the shadowd Module is invalid: {message}")]
    Module {
        /// What is wrong.
        message: String,
    },
}

/// Everything the configuration sources said.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Files read, in order.
    pub files: Vec<PathBuf>,
    /// Every Mapping read, valid or not, in the order read.
    pub mappings: Vec<Mapping>,
    /// The shadowd Module's settings, if a Module was read.
    pub module: Option<crate::settings::DaemonOptions>,
    /// What is wrong with the Mappings, and what is worth knowing.
    pub diagnostics: Diagnostics,
}

/// Loads `paths`: files, or directories meaning every `*.yaml`/`*.yml` in them by name.
pub fn load(paths: &[PathBuf]) -> Result<Loaded, ConfigError> {
    load_with_cluster(paths, &[])
}

/// Loads `paths` and the resources read from the cluster. A cluster resource that is not
/// YAML is an error of its own: it cannot make the files unusable.
pub fn load_with_cluster(
    paths: &[PathBuf],
    cluster: &[ClusterDocument],
) -> Result<Loaded, ConfigError> {
    let mut resources = parse::Resources::default();
    let files = files(paths)?;
    for file in &files {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            path: file.clone(),
            source,
        })?;
        parse::file(file, &text, &mut resources).map_err(|err| ConfigError::Syntax {
            path: file.clone(),
            document: err.document,
            line: err.line,
            message: err.message,
        })?;
    }
    for document in cluster {
        let source = Path::new(&document.source);
        if let Err(err) = parse::file(source, &document.yaml, &mut resources) {
            resources.diagnostics.error(
                "",
                format!(
                    "{}, line {}: not valid YAML: {}",
                    document.source, err.line, err.message
                ),
            );
        }
    }
    if let Some(message) = resources.module_error {
        return Err(ConfigError::Module { message });
    }
    // Sorted by rkey as a string, as Emissary processes resources: that order decides which
    // Mapping is "first".
    resources.mappings.sort_by(|a, b| a.rkey.cmp(&b.rkey));
    Ok(Loaded {
        files,
        mappings: resources.mappings,
        module: resources.module,
        diagnostics: resources.diagnostics,
    })
}

/// The files `paths` stand for: files as they are, directories as their YAML files.
pub fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ConfigError> {
    let mut files = Vec::new();
    for path in paths {
        files.extend(expand(path)?);
    }
    Ok(files)
}

/// A file as is; a directory as its YAML files in name order.
fn expand(path: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(read_error)?;
    if !metadata.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(read_error)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| {
            // Kubernetes ConfigMap mounts hold `..data` links and dot-directories: skip them.
            let hidden = p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            let yaml = p
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e == "yaml" || e == "yml");
            !hidden && yaml && p.is_file()
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ConfigError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(files)
}
