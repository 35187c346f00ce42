//! The fuzz script of `fuzz/fuzz_targets/response_diff.rs`, here so that `cargo test` runs
//! its seed corpus (`fuzz/corpus/response_diff/`) too: two response bodies from hostile
//! bytes, under a content-coding and type the first byte picks, flattened and compared.
//! Never a panic, a body compared with itself never differs, and both orders of a
//! comparison find the same fields.

use crate::{DiffOptions, Fields, Response, differences};

/// Runs one input.
pub fn response_diff(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let coding = ["identity", "gzip", "deflate", "br", "gzip, br", "zstd"][usize::from(pick) % 6];
    let kind = ["application/json", "text/plain", ""][usize::from(pick / 6) % 3];
    let headers = vec![
        ("Content-Encoding".to_string(), coding.to_string()),
        ("Content-Type".to_string(), kind.to_string()),
    ];
    let options = DiffOptions {
        max_body_bytes: 64 << 10,
        set_arrays: vec!["$.s".into()],
        keyed_arrays: vec![("$.k".into(), "id".into())],
        ignore_paths: vec!["$.i[*].x".into()],
        numeric_tolerance: 0.01,
        ..DiffOptions::default()
    };
    let (a, b) = rest.split_at(rest.len() / 2);
    let fields = |body| {
        Fields::of(
            &Response {
                status: 200,
                headers: &headers,
                body,
                digest: None,
            },
            &options,
        )
    };
    let (fa, fb) = (fields(a), fields(b));
    assert!(differences(&fa, &fa, &options).is_empty());
    let names = |x: &Fields, y: &Fields| -> Vec<String> {
        differences(x, y, &options)
            .into_iter()
            .map(|d| d.field)
            .collect()
    };
    assert_eq!(names(&fa, &fb), names(&fb, &fa));
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_seed_corpus_passes() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/response_diff");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("the seed corpus") {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            super::response_diff(&data);
            seen += 1;
        }
        assert!(seen > 0, "no seeds in {}", dir.display());
    }
}
