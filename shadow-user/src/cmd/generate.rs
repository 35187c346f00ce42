//! `shadowd generate`: shell completions and the man page, both from the clap definition so
//! they never drift from the real flags.

use std::{io::Write, path::Path};

use clap::CommandFactory as _;
use clap_complete::Shell;

use crate::cmd::cli::{Cli, GenerateWhat};

/// Writes completions for `shell` to `out`.
pub fn completions(shell: Shell, out: &mut dyn Write) {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "shadowd", out);
}

/// Writes `shadowd.1` and one page per subcommand (`shadowd-run.1`, …) into `dir`.
pub fn man_pages(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let command = Cli::command();
    let mut written = Vec::new();
    let mut page = |name: String, command: clap::Command| -> std::io::Result<()> {
        let path = dir.join(format!("{name}.1"));
        let mut file = std::fs::File::create(&path)?;
        clap_mangen::Man::new(command).render(&mut file)?;
        written.push(path);
        Ok(())
    };
    page("shadowd".into(), command.clone())?;
    for sub in command.get_subcommands() {
        let name = format!("shadowd-{}", sub.get_name());
        // clap names take `&'static str`; a handful of short strings for a one-shot command.
        let static_name: &'static str = Box::leak(name.clone().into_boxed_str());
        page(name, sub.clone().name(static_name))?;
    }
    Ok(written)
}

/// `shadowd generate`: the exit code.
pub fn command(what: GenerateWhat) -> i32 {
    match what {
        GenerateWhat::Completions { shell } => {
            completions(shell, &mut std::io::stdout());
            0
        }
        GenerateWhat::Man { dir } => match man_pages(&dir) {
            Ok(pages) => {
                for page in pages {
                    println!("{}", page.display());
                }
                0
            }
            Err(err) => {
                tracing::error!(error = %err, dir = %dir.display(), "writing man pages");
                1
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_and_man_pages_name_every_subcommand() {
        let mut bash = Vec::new();
        completions(Shell::Bash, &mut bash);
        let bash = String::from_utf8(bash).unwrap();
        for sub in ["run", "check", "extract", "replay", "status"] {
            assert!(bash.contains(sub), "{sub} missing from bash completions");
        }
        let dir = std::env::temp_dir().join(format!("shadowd-man-{}", std::process::id()));
        let pages = man_pages(&dir).unwrap();
        assert!(pages.iter().any(|p| p.ends_with("shadowd-run.1")));
        let run = std::fs::read_to_string(dir.join("shadowd-run.1")).unwrap();
        assert!(
            run.contains("capture\\-port") || run.contains("capture-port"),
            "{run}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
