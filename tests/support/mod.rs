//! Local stand-ins for the outside world, shared by the integration tests,
//! the end-to-end script and the benchmark (through `examples/fake_services.rs`).
#![allow(dead_code)]

pub mod checkers;
pub mod fake_es;
pub mod fake_hub;
pub mod harness;
pub mod ingest;
pub mod moto;
pub mod osmem;
