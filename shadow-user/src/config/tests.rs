//! Loader tests: every input form, and errors that name file, document, line and field.

use std::path::{Path, PathBuf};

use super::*;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// Writes `text` to a fresh file and loads it.
fn load_text(name: &str, text: &str) -> Result<Loaded, ConfigError> {
    let dir = std::env::temp_dir().join(format!("shadowd-config-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).unwrap();
    let loaded = load(&[path]);
    std::fs::remove_dir_all(&dir).ok();
    loaded
}

fn summary(loaded: &Loaded) -> Vec<(String, String, String, bool)> {
    loaded
        .mappings
        .iter()
        .map(|m| {
            (
                m.rkey.clone(),
                m.criteria.prefix.clone(),
                m.service.to_string(),
                m.shadow,
            )
        })
        .collect()
}

#[test]
fn the_users_example_in_both_forms() {
    let production = |rkey: &str| {
        (
            rkey.to_string(),
            "/myservice/".to_string(),
            "myservice.default:80".to_string(),
            false,
        )
    };
    let shadow = |rkey: &str| {
        (
            rkey.to_string(),
            "/myservice/".to_string(),
            "myservice-shadow.default:80".to_string(),
            true,
        )
    };
    // rkeys are named after their source, as Emissary's are: a Service's annotation names
    // its Mappings after the Service; sorted as strings, `-` before `.`.
    let services = load(&[examples().join("myservice-services.yaml")]).unwrap();
    assert_eq!(
        summary(&services),
        [
            shadow("myservice-shadow.default.1"),
            production("myservice.default.1")
        ]
    );
    assert_eq!(services.diagnostics, Diagnostics::default());

    // A plain file names its documents after itself, in document order.
    let plain = load(&[examples().join("myservice-mappings.yaml")]).unwrap();
    assert_eq!(
        summary(&plain),
        [
            production("myservice-mappings.yaml.1"),
            shadow("myservice-mappings.yaml.2")
        ]
    );
    assert_eq!(plain.mappings[1].weight, 100);
    assert_eq!(plain.mappings[1].timeout.as_millis(), 3000);
}

#[test]
fn getambassador_resources_lists_and_namespaces() {
    let text = r#"
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata:
  name: api
  namespace: prod
spec:
  prefix: /api/
  service: https://api.prod
  weight: 30
  headers:
    X-Canary: "true"
    X-Debug: true
  add_request_headers:
    x-shadow: "yes"
    x-extra:
      value: more
  remove_request_headers: [authorization, cookie]
---
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Service
    metadata:
      name: web
      namespace: shop
      annotations:
        getambassador.io/config: |
          apiVersion: ambassador/v2
          kind: Mapping
          name: web
          prefix: /web/
          service: web:8080
"#;
    let loaded = load_text("crd", text).unwrap();
    assert_eq!(loaded.diagnostics, Diagnostics::default());
    let api = &loaded.mappings[0];
    // A custom resource is named after itself, an annotation's Mapping after its Service.
    assert_eq!(api.rkey, "api.prod");
    assert_eq!(api.service.to_string(), "https://api.prod:443");
    assert_eq!(api.weight, 30);
    assert_eq!(
        api.criteria.headers,
        vec![
            ("x-canary".into(), HeaderMatch::Exact("true".into())),
            ("x-debug".into(), HeaderMatch::Present)
        ]
    );
    assert_eq!(
        api.add_request_headers,
        vec![
            ("x-shadow".into(), "yes".into()),
            ("x-extra".into(), "more".into())
        ]
    );
    assert_eq!(api.remove_request_headers, vec!["authorization", "cookie"]);
    let web = &loaded.mappings[1];
    assert_eq!(
        (web.rkey.as_str(), web.namespace.as_str()),
        ("web.shop.1", "shop")
    );
    assert_eq!(web.service.port, 8080);
}

#[test]
fn a_directory_means_its_yaml_files_in_name_order() {
    let loaded = load(&[examples()]).unwrap();
    assert!(
        loaded
            .files
            .iter()
            .all(|f| f.extension().is_some_and(|e| e == "yaml" || e == "yml"))
    );
    let mut sorted = loaded.files.clone();
    sorted.sort();
    assert_eq!(loaded.files, sorted);
    assert!(loaded.mappings.len() >= 4);
}

#[test]
fn field_errors_name_file_document_line_and_field() {
    let text = "apiVersion: ambassador/v0\nkind: Mapping\nname: a\nprefix: /a/\nservice: a\n---\napiVersion: ambassador/v0\nkind: Mapping\nname: b\nprefix: /b/\nservice: http://b/path\nweight: 130\n";
    let loaded = load_text("fielderr", text).unwrap();
    assert_eq!(
        loaded.mappings.len(),
        1,
        "the bad Mapping builds nothing, the good one loads"
    );
    let errors: Vec<&str> = loaded
        .diagnostics
        .errors
        .iter()
        .map(|(_, m)| m.as_str())
        .collect();
    assert_eq!(loaded.diagnostics.errors[0].0, "config.yaml.2");
    assert!(errors[0].ends_with("config.yaml, document 2, line 11: field service: service http://b/path has extra URL components"), "{errors:?}");
    assert!(
        errors[1].ends_with("document 2, line 12: field weight: 130 is outside 0-100"),
        "{errors:?}"
    );
}

#[test]
fn fields_that_would_inject_bytes_into_a_copy_are_errors_and_build_nothing() {
    let good = "apiVersion: ambassador/v0\nkind: Mapping\nname: a\nprefix: /a/\nservice: a\n";
    let shadow = |name: &str, field: &str| {
        format!(
            "---\napiVersion: ambassador/v0\nkind: Mapping\nname: {name}\nprefix: /a/\nservice: a-test\nshadow: true\n{field}\n"
        )
    };
    let text = [
        good.to_string(),
        shadow(
            "h",
            "add_request_headers:\n  X-Test: \"yes\\r\\nX-Injected: 1\"",
        ),
        shadow("n", "add_request_headers:\n  \"X Test\": yes"),
        shadow("r", "remove_request_headers: [\"Cookie\\r\\n\"]"),
        shadow(
            "w",
            "rewrite: \"/v2/ HTTP/1.1\\r\\nHost: evil\\r\\n\\r\\nGET /\"",
        ),
        shadow("o", "host_rewrite: \"test\\r\\nX-Injected: 1\""),
    ]
    .concat();
    let loaded = load_text("wire", &text).unwrap();
    assert_eq!(
        loaded
            .mappings
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>(),
        ["a"],
        "no Mapping that would write such bytes is kept"
    );
    let errors: Vec<(&str, &str)> = loaded
        .diagnostics
        .errors
        .iter()
        .map(|(rkey, m)| (rkey.as_str(), m.as_str()))
        .collect();
    assert_eq!(errors.len(), 5, "{errors:?}");
    for (rkey, field) in [
        (
            "config.yaml.2",
            "field add_request_headers: the value of X-Test holds a byte",
        ),
        (
            "config.yaml.3",
            "field add_request_headers: \"X Test\" is not a header field name",
        ),
        (
            "config.yaml.4",
            "field remove_request_headers: \"Cookie\\r\\n\" is not a header field name",
        ),
        ("config.yaml.5", "field rewrite: "),
        ("config.yaml.6", "field host_rewrite: "),
    ] {
        assert!(
            errors.iter().any(|(k, m)| *k == rkey && m.contains(field)),
            "{rkey}: {field} in {errors:?}"
        );
    }
}

#[test]
fn missing_fields_and_wrong_types_are_errors() {
    let text = "apiVersion: ambassador/v0\nkind: Mapping\nname: a\nservice: a\nshadow: maybe\n";
    let loaded = load_text("missing", text).unwrap();
    assert!(loaded.mappings.is_empty());
    let errors: Vec<&str> = loaded
        .diagnostics
        .errors
        .iter()
        .map(|(_, m)| m.as_str())
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("line 1: field prefix: required field is missing")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("line 5: field shadow: expected true or false")),
        "{errors:?}"
    );
}

#[test]
fn unknown_fields_and_kinds_are_notices() {
    let text = "apiVersion: ambassador/v0\nkind: Mapping\nname: a\nprefix: /a/\nservice: a\ncors:\n  origins: '*'\n---\napiVersion: v1\nkind: ConfigMap\n";
    let loaded = load_text("unknown", text).unwrap();
    assert_eq!(loaded.mappings.len(), 1);
    assert!(loaded.diagnostics.errors.is_empty());
    let notices: Vec<&str> = loaded
        .diagnostics
        .notices
        .iter()
        .map(|(_, m)| m.as_str())
        .collect();
    assert!(
        notices[0].ends_with("document 1, line 6: unknown Mapping field cors ignored"),
        "{notices:?}"
    );
    assert_eq!(loaded.diagnostics.notices[0].0, "config.yaml.1");
    assert!(
        notices[1].ends_with("document 2: kind ConfigMap ignored"),
        "{notices:?}"
    );
}

#[test]
fn malformed_yaml_is_unusable_with_its_line() {
    let text = "apiVersion: ambassador/v0\nkind: Mapping\n---\nname: [broken\nprefix: /a/\n";
    match load_text("syntax", text) {
        Err(ConfigError::Syntax { document, line, .. }) => {
            assert_eq!(document, 2);
            assert!((4..=6).contains(&line), "line {line}");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    assert!(matches!(
        load(&[PathBuf::from("/nonexistent/shadowd.yaml")]),
        Err(ConfigError::Read { .. })
    ));
}

#[test]
fn the_shadowd_module_carries_daemon_settings() {
    let text = "apiVersion: getambassador.io/v3alpha1\nkind: Module\nmetadata:\n  name: shadowd\nspec:\n  config:\n    interfaces: [eth0]\n    capture_ports: [80, 8080]\n    admin: 0.0.0.0:8877\n    shadow_max_connections: 4\n    unsafe_skip_shadow_tls_verify: true\n    limits:\n      max_body_bytes: 1048576\n---\napiVersion: getambassador.io/v3alpha1\nkind: Module\nmetadata:\n  name: ambassador\n";
    let loaded = load_text("module", text).unwrap();
    let module = loaded.module.expect("module");
    assert_eq!(module.interfaces, Some(vec!["eth0".to_string()]));
    assert_eq!(module.capture_ports, Some(vec![80, 8080]));
    assert_eq!(module.shadow.shadow_max_connections, Some(4));
    assert_eq!(module.shadow.unsafe_skip_shadow_tls_verify, Some(true));
    assert_eq!(module.limits.unwrap().http().max_body_bytes, Some(1 << 20));
    assert!(
        loaded.diagnostics.notices[0]
            .1
            .contains("Module ambassador is not for shadowd")
    );

    let bad = "apiVersion: ambassador/v0\nkind: Module\nname: shadowd\nconfig:\n  interfaces: [eth0]\n  max_flow: 3\n";
    match load_text("badmodule", bad) {
        Err(ConfigError::Module { message }) => {
            assert!(
                message.contains("line 4: field config: unknown field `max_flow`"),
                "{message}"
            );
        }
        other => panic!("an invalid Module must make the configuration unusable: {other:?}"),
    }

    let misspelt = "apiVersion: ambassador/v0\nkind: Module\nname: shadowd\nconfig:\n  shadow_max_conections: 4\n  limits:\n    max_flows: 9\n";
    match load_text("misspelt", misspelt) {
        Err(ConfigError::Module { message }) => assert!(
            message.contains("field config: unknown field `shadow_max_conections`"),
            "{message}"
        ),
        other => panic!("a misspelt option must not be ignored: {other:?}"),
    }
    let nested = "apiVersion: ambassador/v0\nkind: Module\nname: shadowd\nconfig:\n  limits:\n    max_flow: 9\n";
    match load_text("nested", nested) {
        Err(ConfigError::Module { message }) => {
            assert!(message.contains("unknown field `max_flow`"), "{message}")
        }
        other => panic!("a misspelt limit must not be ignored: {other:?}"),
    }

    let typo = "apiVersion: ambassador/v0\nkind: Module\nname: shadowd\nconfig:\n  remove_request_headers: [Cookie, \"Authorization \"]\n";
    match load_text("typo", typo) {
        Err(ConfigError::Module { message }) => assert!(
            message.contains(
                "field config.remove_request_headers: \"Authorization \" is not a header field name"
            ),
            "{message}"
        ),
        other => panic!("a field name that cannot be one must not remove nothing: {other:?}"),
    }
}

#[test]
fn diff_settings_of_a_shadow_mapping_defaults_and_errors() {
    let loaded = load_text(
        "diff",
        "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nname: plain\nprefix: /a/\nservice: a-shadow\nshadow: true\ndiff: true\n\
         ---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nname: tuned\nprefix: /b/\nservice: b-shadow\nshadow: true\n\
         diff:\n  weight: 25\n  reference: users-v1.default:8080\n  ignore_headers: [X-Trace]\n  ignore: [\"$.meta.took\"]\n  unordered_arrays: [\"$.tags\"]\n  keyed_arrays: {\"$.items\": id}\n  numeric_tolerance: 0.01\n  max_body_bytes: 4096\n  relative_threshold: 0.5\n  absolute_threshold: 0.01\n  colour: blue\n\
         ---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nname: broken\nprefix: /c/\nservice: c-shadow\nshadow: true\n\
         diff:\n  weight: 101\n  reference: http://bad/path\n  ignore: [meta.took]\n  numeric_tolerance: 2\n",
    )
    .unwrap();
    let by_name = |name: &str| loaded.mappings.iter().find(|m| m.name == name);
    let plain = by_name("plain").unwrap().diff.as_ref().unwrap();
    assert_eq!(plain.weight, 100);
    assert_eq!(plain.options, shadow_diff::DiffOptions::default());
    let tuned = by_name("tuned").unwrap().diff.as_ref().unwrap();
    assert_eq!(tuned.weight, 25);
    assert_eq!(
        tuned.reference.as_ref().map(ToString::to_string),
        Some("users-v1.default:8080".to_string())
    );
    assert_eq!(plain.reference, None);
    assert!(tuned.options.ignore_headers.contains("x-trace"));
    assert!(
        tuned.options.ignore_headers.contains("date"),
        "on top of the defaults"
    );
    assert_eq!(tuned.options.ignore_paths, ["$.meta.took"]);
    assert_eq!(tuned.options.set_arrays, ["$.tags"]);
    assert_eq!(
        tuned.options.keyed_arrays,
        [("$.items".to_string(), "id".to_string())]
    );
    assert_eq!(tuned.options.numeric_tolerance, 0.01);
    assert_eq!(tuned.options.max_body_bytes, 4096);
    assert_eq!(
        (tuned.thresholds.relative, tuned.thresholds.absolute),
        (0.5, 0.01)
    );
    assert!(
        loaded
            .diagnostics
            .notices
            .iter()
            .any(|(_, n)| n.contains("unknown diff field colour ignored")),
        "{:?}",
        loaded.diagnostics.notices
    );
    assert!(
        by_name("broken").is_none(),
        "a Mapping with a bad diff is not used"
    );
    let errors: Vec<&str> = loaded
        .diagnostics
        .errors
        .iter()
        .map(|(_, e)| e.as_str())
        .collect();
    for wanted in [
        "field weight: 101 is outside 0-100",
        "field ignore: \"meta.took\": a JSON path starts with $",
        "field numeric_tolerance: expected a number from 0 to 1",
        "field reference: ",
    ] {
        assert!(
            errors.iter().any(|e| e.contains(wanted)),
            "{wanted} in {errors:?}"
        );
    }
}
