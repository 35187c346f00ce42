//! A real browser for page tests: headless Chromium inside a test namespace, with a profile
//! of its own that is removed afterwards.

use std::{path::PathBuf, process::Output};

use crate::netns::Netns;

/// Headless Chromium in `ns`, with a profile directory of its own.
pub struct Browser<'a> {
    ns: &'a Netns,
    profile: PathBuf,
}

impl<'a> Browser<'a> {
    /// A browser whose profile is named after `ns`.
    pub fn new(ns: &'a Netns) -> Browser<'a> {
        Browser {
            ns,
            profile: std::env::temp_dir().join(format!("{}-chromium", ns.name)),
        }
    }

    /// Loads `url` with `extra` flags (`--dump-dom`, `--screenshot=…`).
    pub fn load(&self, url: &str, extra: &[&str]) -> Output {
        self.ns
            .command("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ])
            .arg(format!("--user-data-dir={}", self.profile.display()))
            .args(extra)
            .arg(url)
            .output()
            .expect("chromium")
    }

    /// The DOM of `url` once loaded, with what the browser said on stderr; panics on a
    /// JavaScript error (the pages have none).
    pub fn dom(&self, url: &str) -> String {
        let dom = self.load(url, &["--dump-dom"]);
        assert!(
            !String::from_utf8_lossy(&dom.stderr).contains("Uncaught"),
            "JavaScript errors"
        );
        String::from_utf8_lossy(&dom.stdout).into_owned()
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.profile).ok();
    }
}
