//! The subcommands of `shadowd`: the command line (`cli`), the daemon (`run`), and the
//! tools beside it (`check`, `status`, `extract`, `replay`, `generate`).

pub mod check;
pub mod cli;
pub mod extract;
pub mod generate;
pub mod replay;
pub mod run;
pub mod status;
