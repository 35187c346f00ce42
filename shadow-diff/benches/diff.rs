//! What a diff costs: flattening production's and the shadow's JSON responses and finding
//! the fields they differ in, for 1 KiB and 64 KiB bodies (a list of order lines, one field
//! different), against the bytes of the body. Run with `cargo bench -p shadow-diff`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use shadow_diff::{DiffOptions, Fields, Response, differences};

/// A JSON body of about `bytes` bytes: orders with ids, prices and names.
fn body(bytes: usize, price_of_last: u32) -> Vec<u8> {
    let mut items = Vec::new();
    let mut n = 0;
    while items.iter().map(|s: &String| s.len() + 1).sum::<usize>() < bytes {
        items.push(format!(
            r#"{{"id":{n},"name":"item number {n}","price":{},"tags":["a","b"]}}"#,
            if n == 0 { price_of_last } else { 100 + n }
        ));
        n += 1;
    }
    format!(r#"{{"items":[{}]}}"#, items.join(",")).into_bytes()
}

fn diff(c: &mut Criterion) {
    let headers = vec![("Content-Type".to_string(), "application/json".to_string())];
    let options = DiffOptions::default();
    let mut group = c.benchmark_group("diff_json");
    for size in [1 << 10, 64 << 10] {
        let (production, shadow) = (body(size, 1), body(size, 2));
        group.throughput(Throughput::Bytes(production.len() as u64 * 2));
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter(|| {
                let response = |body| Response {
                    status: 200,
                    headers: &headers,
                    body,
                    digest: None,
                };
                let a = Fields::of(&response(black_box(&production)), &options);
                let b = Fields::of(&response(black_box(&shadow)), &options);
                let found = differences(&a, &b, &options);
                assert_eq!(found.len(), 1);
                found
            })
        });
    }
    group.finish();
}

criterion_group!(benches, diff);
criterion_main!(benches);
