//! `shadowd check`: loads a configuration and prints its route table, errors and notices.
//! Exit codes: 0 no errors, 1 loaded with errors, 64 unusable.

use std::{io::Write, path::PathBuf};

use crate::active::ActiveConfig;

/// Prints the report for `paths` to `out`; returns the exit code.
pub fn check(paths: &[PathBuf], out: &mut dyn Write) -> i32 {
    let config = match ActiveConfig::load(paths) {
        Ok(config) => config,
        Err(err) => {
            let _ = writeln!(out, "unusable configuration: {}", crate::error_chain(&err));
            let _ = writeln!(
                out,
                "shadowd run does not start with it (exit 64), and a reload to it keeps the \
                 running configuration"
            );
            return 64;
        }
    };
    let _ = writeln!(
        out,
        "route table ({} mappings, first match wins):",
        config.mappings
    );
    let _ = write!(out, "{}", config.table);
    let _ = writeln!(out, "capture: {}", config.capture_scope(None));
    for (service, found) in &config.production.services {
        let _ = writeln!(out, "  {service} -> {found}");
    }
    let sections = [
        ("errors", &config.diagnostics.errors),
        ("notices", &config.diagnostics.notices),
    ];
    for (title, entries) in sections {
        let _ = writeln!(out, "{title}: {}", entries.len());
        for (rkey, message) in entries {
            let rkey = if rkey.is_empty() { "(global)" } else { rkey };
            let _ = writeln!(out, "  [{rkey}] {message}");
        }
    }
    if config.diagnostics.errors.is_empty() {
        0
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn run(paths: &[PathBuf]) -> (i32, String) {
        let mut out = Vec::new();
        let code = check(paths, &mut out);
        (code, String::from_utf8(out).unwrap())
    }

    #[test]
    fn a_module_error_makes_the_whole_configuration_unusable_and_says_what_that_means() {
        let dir = std::env::temp_dir().join(format!("shadowd-check-module-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("shadowd.yaml");
        std::fs::write(
            &path,
            "apiVersion: ambassador/v0\nkind: Mapping\nname: a\nprefix: /a/\nservice: a\n---\n\
             apiVersion: getambassador.io/v3alpha1\nkind: Module\nmetadata:\n  name: shadowd\n\
             spec:\n  config:\n    interfacs: [eth0]\n",
        )
        .unwrap();
        let (code, text) = run(&[path]);
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(code, 64, "{text}");
        assert!(
            text.contains("unusable configuration: the shadowd Module is invalid")
                && text.contains("interfacs"),
            "{text}"
        );
        assert!(
            text.contains("does not start with it (exit 64), and a reload to it keeps the running configuration"),
            "{text}"
        );
        assert!(
            !text.contains("route table"),
            "nothing of it is used: {text}"
        );
    }

    #[test]
    fn the_users_example_checks_clean() {
        let example =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/myservice-services.yaml");
        let (code, text) = run(&[example]);
        assert_eq!(code, 0, "{text}");
        // The group is named after its first Mapping in rkey order: the Service annotations
        // name them `myservice.default.1` and `myservice-shadow.default.1`, `-` before `.`.
        assert!(text.contains("group myservice-shadow.default.1"), "{text}");
        assert!(
            text.contains("production: myservice-mapping -> myservice.default:80"),
            "{text}"
        );
        assert!(
            text.contains(
                "shadow:     myservice-shadow-mapping -> myservice-shadow.default:80, weight 100%"
            ),
            "{text}"
        );
        // Nothing here resolves the cluster's names: port 80 of every address.
        assert!(text.contains("capture: port 80 at any address"), "{text}");
        assert!(
            text.contains("  myservice.default:80 -> its port at any address ("),
            "{text}"
        );
        assert!(text.contains("errors: 0"), "{text}");
    }

    #[test]
    fn a_second_shadow_is_an_error_and_exit_1() {
        let dir = std::env::temp_dir().join(format!("shadowd-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("three.yaml");
        std::fs::write(
            &path,
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/myservice-mappings.yaml")).unwrap()
                + "---\napiVersion: ambassador/v0\nkind: Mapping\nname: myservice-shadow-2\nprefix: /myservice/\nservice: other.default\nshadow: true\n",
        )
        .unwrap();
        let (code, text) = run(std::slice::from_ref(&path));
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(code, 1, "{text}");
        // Mappings are taken in rkey order, and a plain file names its documents
        // `three.yaml.1`, `.2`, `.3`: the first shadow is the first written, as in Ambassador.
        assert!(
            text.contains(
                "[three.yaml.1] cannot accept myservice-shadow-2 as second shadow after \
                 myservice-shadow-mapping"
            ),
            "{text}"
        );
        assert!(
            text.contains("shadow:     myservice-shadow-mapping -> myservice-shadow.default:80"),
            "{text}"
        );
    }

    #[test]
    fn unusable_configuration_exits_64() {
        let (code, text) = run(&[PathBuf::from("/nonexistent/mappings.yaml")]);
        assert_eq!(code, 64);
        assert!(
            text.starts_with("unusable configuration: reading /nonexistent/mappings.yaml"),
            "{text}"
        );
    }
}
