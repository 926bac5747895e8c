//! pushdeploy: an ECR push becomes a digest-pinned ECS deployment.
//!
//! The edge ([`event`]) turns a raw payload into a typed push, which [`confirm`] holds to what
//! ECR says of it; [`follow`] and [`plan`] decide,
//! over plain data, which services move and how; [`revision`] builds the new task definition;
//! [`aws`] and [`ledger`] own every AWS call; [`deploy`] puts them together for the handler.
//! What operators see comes out of [`telemetry`] (log lines), [`metrics`] (EMF) and [`notify`] (SNS).

#![warn(missing_docs)]

pub mod approve;
pub mod aws;
pub mod clock;
pub mod codedeploy;
pub mod config;
pub mod confirm;
pub mod deploy;
pub mod diff;
pub mod ecs_event;
pub mod event;
pub mod follow;
pub mod gate;
pub mod image;
pub mod init;
pub mod invocation;
pub mod ledger;
pub mod logging;
pub mod media;
pub mod metrics;
pub mod notify;
pub mod ops;
pub mod outcome;
pub(crate) mod pace;
pub mod plan;
pub mod policy;
pub mod replay;
pub mod resolved;
pub mod revision;
pub mod rollback;
pub mod tags;
pub mod telemetry;
