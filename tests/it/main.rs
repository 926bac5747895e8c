//! Every integration test, in one binary: each of the 19 test files used to be a crate of its
//! own, and each linked the whole AWS SDK, which was most of a fresh `make test` (issue 15).
//! Modules by feature; the timelines, the demo and `make invoke` stay programs of their own
//! (`harness = false`: they print their story).

#[path = "../support/mod.rs"]
mod support;

mod aws_model;
mod cli;
mod deploy;
mod edge;
mod gate;
mod ledger;
mod rollback;
