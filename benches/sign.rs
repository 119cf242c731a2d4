//! Canonicalise + sign + verify a forwarded bundle around the reference report (12 groups x
//! (17 ethnic + 10 IMD) strata, numerator and denominator everywhere; see docs/CONVENTIONS.md).
//!
//! `cargo bench --bench sign`. Each step is measured on its own so that a regression points at
//! its cause: `canonicalize` (parse + RFC 8785 form), `build_and_sign` (what the outbox does
//! once per event and subscriber), `verify` (what a receiver or `pqom-gateway verify` does).

#[path = "../tests/deliver_support/mod.rs"]
mod deliver_support;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pqom_gateway::deliver::canonical::{Json, canonicalize};
use pqom_gateway::deliver::forward;
use pqom_gateway::deliver::keys::{KeyRing, SigningKey};

fn bench(c: &mut Criterion) {
    let ring = KeyRing::new(SigningKey::generate("bench").unwrap().0, Vec::new()).unwrap();
    let jwks = ring.jwks();
    let report = deliver_support::reference_report("RM1");
    let fixture = deliver_support::Fixture::new();
    let (bundle, _) = fixture.forward(ring.signer(), &report, "1");
    eprintln!(
        "reference report {} bytes; forwarded bundle {} bytes",
        report.len(),
        bundle.len()
    );
    assert!(forward::verify(&bundle, &jwks, None).passed());

    let mut g = c.benchmark_group("forwarded_bundle");
    g.throughput(Throughput::Bytes(bundle.len() as u64));
    g.bench_function("canonicalize", |b| {
        b.iter(|| canonicalize(black_box(&bundle)).unwrap())
    });
    let mut parsed = Json::parse(&bundle).unwrap();
    g.bench_function("signing_payload_from_parsed", |b| {
        b.iter(|| forward::signing_payload(black_box(&mut parsed)).unwrap())
    });
    g.bench_function("build_and_sign", |b| {
        b.iter(|| fixture.forward(ring.signer(), black_box(&report), "1"))
    });
    g.bench_function("verify", |b| {
        b.iter(|| assert!(forward::verify(black_box(&bundle), &jwks, None).passed()))
    });
    g.bench_function("build_sign_verify", |b| {
        b.iter(|| {
            let (body, _) = fixture.forward(ring.signer(), black_box(&report), "1");
            assert!(forward::verify(&body, &jwks, None).passed());
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
