//! Insights: what the archive's history tells a maintainer that Docker
//! Hub's lifetime total does not: pulls per day, week and month (as
//! shields.io badges and a stats page), and alerts when pulls spike, stall
//! or go backwards.
//!
//! Read from the archive only, so it works whatever the cluster is doing.
//! The pure parts take data and return data: [`gains`], [`alerts`],
//! [`number`], [`badge`].

pub mod alerts;
pub mod badge;
pub mod gains;
pub mod history;
pub mod number;
pub mod page;
pub mod store;
