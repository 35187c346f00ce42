//! tcpdump writing a capture file in a test namespace, for the tests of the offline tools
//! (`extract`, `replay --pcap`).

use std::{
    process::{Child, Stdio},
    time::Duration,
};

use crate::{eventually, netns::Netns};

/// tcpdump writing a capture file, stopped (and flushed) on `finish` or drop.
pub struct Tcpdump {
    child: Option<Child>,
    /// The capture file, until `finish` hands it over.
    path: Option<std::path::PathBuf>,
}

impl Tcpdump {
    /// tcpdump in `ns` with `capture` (`-i` and link-type flags) of TCP port `port`,
    /// writing `<ns>-<name>.pcap`.
    pub fn start(port: &str, ns: &Netns, name: &str, capture: &[&str]) -> Tcpdump {
        let path = std::env::temp_dir().join(format!("{}-{name}.pcap", ns.name));
        let log = std::env::temp_dir().join(format!("{}-{name}-tcpdump.log", ns.name));
        let child = ns
            .command("tcpdump")
            .args(capture)
            .args(["-s", "0", "-B", "65536", "-U", "-n", "-w"])
            .arg(&path)
            .args(["tcp", "port", port])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("starting tcpdump");
        eventually(
            Duration::from_secs(10),
            "tcpdump to start listening",
            || {
                std::fs::read_to_string(&log)
                    .is_ok_and(|text| text.contains("listening on"))
                    .then_some(())
            },
        );
        std::fs::remove_file(&log).ok();
        Tcpdump {
            child: Some(child),
            path: Some(path),
        }
    }

    /// Waits until the file holds `last` and stops growing (tcpdump has written what the
    /// kernel gave it), stops the capture and returns the file.
    pub fn finish(mut self, last: &[u8]) -> std::path::PathBuf {
        let path = self.path.clone().expect("capture file");
        let mut previous = 0;
        eventually(
            Duration::from_secs(15),
            "tcpdump to write the whole capture",
            || {
                let bytes = std::fs::read(&path).unwrap_or_default();
                let settled =
                    bytes.len() == previous && bytes.windows(last.len()).any(|w| w == last);
                previous = bytes.len();
                std::thread::sleep(Duration::from_millis(200));
                settled.then_some(())
            },
        );
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) on our own child; SIGINT makes tcpdump flush and exit.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        child.wait().expect("tcpdump exits");
        self.path.take().expect("capture file")
    }
}

impl Drop for Tcpdump {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(path) = self.path.take() {
            std::fs::remove_file(path).ok();
        }
    }
}
