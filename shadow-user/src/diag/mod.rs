//! Diagnostics: one report of the configuration, capture, loss ledger and the production vs
//! shadow comparison, as JSON (`/diag?json=true`), HTML (`/diag`) and terminal text
//! (`shadowd status`).

mod build;
pub mod html;
mod html_diff;
pub mod model;
mod svg;
pub mod text;

pub use build::Sources;
pub use model::Report;
