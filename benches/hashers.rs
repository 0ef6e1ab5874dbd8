//! Each Django hasher's verification at Django 6.1's default cost, on the hashes Django 6.1.3
//! wrote (`tests/data/django-6.1-hash-vectors.json`), plus a new default hash (`make_password`).
//!
//! `cargo bench --bench hashers`. These are the figures the login throughput is held against:
//! one PBKDF2-SHA256 verification at 1,500,000 iterations bounds a core at 1/t logins a second.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse::django::hashers::{self, HasherConfig};

#[derive(serde::Deserialize)]
struct Vectors {
    vectors: Vec<Vector>,
}

#[derive(serde::Deserialize)]
struct Vector {
    alg: String,
    password: String,
    encoded: String,
}

fn vectors() -> Vec<Vector> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/django-6.1-hash-vectors.json");
    let text = std::fs::read_to_string(path).expect("hash vectors");
    serde_json::from_str::<Vectors>(&text).expect("hash vectors parse").vectors
}

fn verify_each_hasher(c: &mut Criterion) {
    let config = HasherConfig::default();
    let mut group = c.benchmark_group("verify");
    // A default-cost hash takes 0.1-0.5 s: ten samples are plenty to see the mean.
    group.sample_size(10).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_millis(500));
    for vector in vectors() {
        let verification = hashers::verify(&vector.password, &vector.encoded, &config).expect("verifies");
        assert!(verification.valid, "{} vector must verify", vector.alg);
        group.bench_function(&vector.alg, |b| {
            b.iter(|| hashers::verify(&vector.password, &vector.encoded, &config).expect("verifies"))
        });
    }
    group.bench_function("make_password(pbkdf2_sha256)", |b| {
        b.iter(|| hashers::make_password("correct horse battery", &config))
    });
    group.finish();
}

criterion_group!(benches, verify_each_hasher);
criterion_main!(benches);
