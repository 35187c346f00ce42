//! `shadowd replay`: the requests of a capture file, copied to their shadows as live capture
//! would copy them, with the ledger printed at the end.

use std::sync::Arc;

use super::{cli::ReplayArgs, extract::ServerSide, progress::FileProgress};
use crate::{
    active::ActiveConfig,
    capture::ports::PortSet,
    replay::{ReplaySettings, ReplayStats, file::replay_file},
    settings::ShadowSettings,
};

/// `shadowd replay`: the exit code.
pub async fn command(args: &ReplayArgs) -> i32 {
    let mut config = match ActiveConfig::load(&args.config) {
        Ok(config) => config,
        Err(err) => {
            tracing::error!(error = %crate::error_chain(&err), "shadowd replay: unusable configuration");
            return 64;
        }
    };
    if args.diff {
        config.table.diff_every_shadow();
    }
    config.log();
    let shadow = ShadowSettings::resolve(&args.shadow, config.module.as_ref());
    let upstream = match shadow.upstream(0) {
        Ok(upstream) => upstream,
        Err(err) => {
            tracing::error!(error = %crate::error_chain(&err), "shadowd replay: TLS set-up");
            return 64;
        }
    };
    let explicit =
        (!args.capture_ports.is_empty()).then(|| PortSet::new(args.capture_ports.iter().copied()));
    let server_side = ServerSide::Scope(config.capture_scope(explicit.as_ref()));
    let stats = ReplayStats::default();
    let config = Arc::new(config);
    let progress = FileProgress::start(&args.pcap);
    let tick = {
        let (progress, stats) = (progress.clone(), stats.clone());
        let names = crate::replay::summary::shadow_mappings(&config);
        move || progress.say(crate::replay::summary::progress(&stats, &names))
    };
    let reader = progress.clone();
    let result = replay_file(
        &args.pcap,
        config.clone(),
        server_side,
        ReplaySettings::new(upstream),
        stats.clone(),
        move |file| reader.reader(file),
        tick,
    )
    .await;
    progress.finish();
    match result {
        Ok(counts) => {
            eprint!(
                "{}",
                crate::replay::summary::render(&counts, &stats, &config)
            );
            if !args.diff {
                return 0;
            }
            // Every copy is settled: once the diff thread has handled what it was given,
            // the report is whole.
            let differ = &stats.comparison.differ;
            differ.drain();
            let report = differ.report();
            print!("{}", crate::diff::report::text(&report));
            let compared: u64 = report.iter().map(|mapping| mapping.compared).sum();
            if compared == 0 {
                // A gate that compared nothing must not pass: the shadows did not answer, or
                // the capture lacks production's answers.
                eprintln!("shadowd replay --diff: no copy was diffed");
                return 1;
            }
            match crate::diff::report::any_flagged(&report) {
                true => 2,
                false => 0,
            }
        }
        Err(err) => {
            tracing::error!(error = %crate::error_chain(&err), "shadowd replay failed");
            1
        }
    }
}
