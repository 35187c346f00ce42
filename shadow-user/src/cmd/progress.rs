//! Progress of work on a capture file, for a person at a terminal: bytes of the file read,
//! what was found and what became of it, the rate and the time left. Nothing is drawn when
//! stderr is not a terminal (a pipe, a log file, CI), and the bar is cleared at the end, where
//! the command prints its summary.

use std::{
    fs::File,
    io::{IsTerminal as _, Read},
    path::Path,
    time::Duration,
};

use indicatif::{ProgressBar, ProgressStyle};

/// How often the message is rewritten: often enough to follow, rarely enough to cost nothing.
const REFRESH: Duration = Duration::from_millis(200);

/// A bar over one capture file's bytes (clones draw the same bar).
#[derive(Clone)]
pub struct FileProgress {
    bar: ProgressBar,
}

impl FileProgress {
    /// A bar for `path`, drawn on stderr if it is a terminal.
    pub fn start(path: &Path) -> FileProgress {
        let drawn = std::io::stderr().is_terminal();
        FileProgress::new(path, drawn)
    }

    fn new(path: &Path, drawn: bool) -> FileProgress {
        let bar = if drawn {
            let len = std::fs::metadata(path).map_or(0, |meta| meta.len());
            let bar = ProgressBar::new(len);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bytes}/{total_bytes} {wide_bar} {bytes_per_sec}, {eta} left  {msg}",
                )
                .expect("a valid template"),
            );
            bar.enable_steady_tick(REFRESH);
            bar
        } else {
            ProgressBar::hidden()
        };
        FileProgress { bar }
    }

    /// `file`, read through the bar: each read moves it.
    pub fn reader(&self, file: File) -> impl Read + Send + use<> {
        self.bar.wrap_read(file)
    }

    /// What was found so far, beside the bar.
    pub fn say(&self, message: String) {
        self.bar.set_message(message);
    }

    /// Clears the bar: the summary follows.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_drawn_off_a_terminal_and_the_bytes_read_are_counted_on_one() {
        let path = std::env::temp_dir().join(format!("shadowd-progress-{}", std::process::id()));
        std::fs::write(&path, vec![7u8; 10_000]).unwrap();
        let hidden = FileProgress::new(&path, false);
        assert!(hidden.bar.is_hidden());
        let shown = FileProgress::new(&path, true);
        assert_eq!(shown.bar.length(), Some(10_000));
        let mut reader = shown.reader(File::open(&path).unwrap());
        let mut read = Vec::new();
        reader.read_to_end(&mut read).unwrap();
        assert_eq!(read.len(), 10_000, "the bytes pass through untouched");
        assert_eq!(shown.bar.position(), 10_000);
        shown.say("3 requests".into());
        assert_eq!(shown.bar.message(), "3 requests");
        shown.finish();
        std::fs::remove_file(&path).ok();
    }
}
