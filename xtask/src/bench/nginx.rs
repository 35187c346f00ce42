//! nginx for the bench: the configuration templates (an origin that answers every request
//! with 1 KiB over keep-alive, and scenario C's proxy with `mirror`) and a guard that runs
//! one nginx (master and its workers) in a namespace and reads its access log when stopped.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result};

use super::{netns::Netns, process::Proc, signals};

/// Size of every response body.
pub const RESPONSE_BYTES: usize = 1024;
/// Size of the body of `/bench/large`, the large-response profile.
pub const LARGE_RESPONSE_BYTES: usize = 64 << 10;
/// The file `/bench/large` answers with, in an origin's directory.
const LARGE_RESPONSE_FILE: &str = "large-response";

/// Lines every configuration starts with: `workers` workers, everything under `dir`, no
/// daemon (the guard owns the master), connections up to the open-file limit the bench
/// raised (well above the 1,000 idle connections).
fn main_block(dir: &Path, workers: usize) -> String {
    let dir = dir.display();
    let connections = super::process::fd_limit()
        .saturating_sub(64)
        .clamp(1024, 65536);
    format!(
        "daemon off;
master_process on;
user root;
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections {connections}; }}
"
    )
}

/// `http` settings shared by the origin and the proxy: temp paths under `dir`, the access
/// log format (`$msec`: time at log, the same clock in every namespace), keep-alive that
/// never ends a benchmark connection.
fn http_common(dir: &Path) -> String {
    let dir = dir.display();
    format!(
        "    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    log_format bench '$msec $request_uri $status $request_length';
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_max_body_size 1m;
    client_body_buffer_size 128k;
"
    )
}

/// Where an origin stores uploads (`PUT /bench/upload/NAME`), under its directory.
pub const UPLOAD_FILES: &str = "files";

/// Port of an origin's body sink, on its namespace's loopback.
const BODY_SINK: &str = "127.0.0.1:8090";

/// About 1 KiB of JSON as services answer it: a time stamp and a request id that differ on
/// every response (nginx's `$msec` and `$request_id`), and a list of records (the diff
/// bench's response).
fn json_body() -> String {
    let items: Vec<String> = (0..12)
        .map(|i| {
            format!(
                "{{\"id\":{i},\"name\":\"item-{i}\",\"price\":{}.5,\"tags\":[\"a\",\"b\"]}}",
                10 + i
            )
        })
        .collect();
    format!(
        "{{\"at\":\"$msec\",\"request_id\":\"$request_id\",\"items\":[{}]}}",
        items.join(",")
    )
}

/// An origin (production or shadow): `return 200` with 1 KiB for every path (`/bench/json`:
/// about 1 KiB of JSON; `/bench/large`: 64 KiB from the file `origin_files` writes), each request
/// logged (buffered). Under `/bench/post` the body is read in full first — proxied to a
/// sink in the same nginx, since `return` answers before reading it — so `$request_length`
/// shows whether the whole body arrived. `PUT /bench/upload/NAME` stores the body (DAV) under
/// `UPLOAD_FILES`, so uploads can be compared with what was sent. With more than one worker,
/// each has its own listening socket (`reuseport`), so the kernel spreads connections evenly
/// over them: one worker may hold only as many as its open-file limit.
pub fn origin(dir: &Path, listen: &str, workers: usize) -> String {
    let body = "x".repeat(RESPONSE_BYTES);
    let json = json_body();
    let reuseport = if workers > 1 { " reuseport" } else { "" };
    format!(
        "{main}http {{
{common}    upstream body_sink {{
        server {BODY_SINK};
        keepalive 64;
    }}
    server {{
        listen {BODY_SINK};
        location / {{
            default_type text/plain;
            return 200 '{body}';
        }}
    }}
    server {{
        listen {listen} backlog=4096{reuseport};
        access_log {log} bench buffer=256k flush=1s;
        location / {{
            default_type text/plain;
            return 200 '{body}';
        }}
        location = /bench/large {{
            default_type application/octet-stream;
            alias {large};
        }}
        location /bench/json {{
            default_type application/json;
            return 200 '{json}';
        }}
        location /bench/post {{
            proxy_pass http://body_sink;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }}
        location /bench/upload/ {{
            root {files};
            dav_methods PUT;
            create_full_put_path on;
            client_max_body_size 0;
        }}
    }}
}}
",
        main = main_block(dir, workers),
        common = http_common(dir),
        log = dir.join("access.log").display(),
        files = dir.join(UPLOAD_FILES).display(),
        large = dir.join(LARGE_RESPONSE_FILE).display(),
    )
}

/// Writes the files an origin under `dir` answers with.
pub fn origin_files(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join(LARGE_RESPONSE_FILE),
        vec![b'x'; LARGE_RESPONSE_BYTES],
    )
    .context("writing the large response")
}

/// Where C's proxy sends its mirror subrequests, on its own loopback.
const MIRROR_SINK: &str = "127.0.0.1:8081";

/// Scenario C's proxy in the production path: `proxy_pass` to production and a `mirror`
/// subrequest (with the body) for the shadow; the copy's Host gets `-shadow` like
/// shadowd's. Not logged: production's log counts.
///
/// nginx makes mirror subrequests header-only, so the proxy finishes one as soon as the
/// response header arrives, without reading the body, and can never keep its upstream
/// connection: proxying the mirror straight to the shadow opens a TCP connection per copy
/// to the shadow, whose TIME-WAITs exhaust the proxy's ephemeral ports within seconds
/// (measured: 5,100 requests/s for 3 s, then 565/s). So the mirror goes to a server in
/// the same nginx on loopback (connection per copy, loopback TIME-WAITs are reused), which
/// proxies to the shadow over keep-alive connections.
pub fn mirror_proxy(dir: &Path, listen: &str, production: &str, shadow: &str) -> String {
    format!(
        "{main}http {{
{common}    upstream production {{
        server {production};
        keepalive 128;
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }}
    upstream shadow {{
        server {shadow};
        keepalive 128;
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }}
    upstream mirror_sink {{
        server {MIRROR_SINK};
    }}
    server {{
        listen {MIRROR_SINK} backlog=4096;
        location / {{
            proxy_pass http://shadow;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host $host;
        }}
    }}
    server {{
        listen {listen} backlog=4096;
        location / {{
            mirror /mirror;
            mirror_request_body on;
            proxy_pass http://production;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }}
        location = /mirror {{
            internal;
            proxy_pass http://mirror_sink$request_uri;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host $host-shadow;
        }}
    }}
}}
",
        main = main_block(dir, 1),
        common = http_common(dir),
    )
}

/// One access-log line: `$msec $request_uri $status $request_length`.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub msec: f64,
    pub uri: String,
    pub status: u16,
    pub request_length: u64,
}

/// A running nginx (master and worker in one process group).
pub struct Nginx {
    proc: Proc,
    dir: PathBuf,
}

impl Nginx {
    /// Writes `config` (from a template above, for this `dir`) and starts nginx in `ns`,
    /// on `cpu` if given; returns once `listen` accepts connections.
    pub fn start(
        ns: &Netns,
        cpu: Option<usize>,
        dir: &Path,
        config: &str,
        listen: &str,
    ) -> Result<Nginx> {
        std::fs::create_dir_all(dir)?;
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config)?;
        let path = |p: &Path| p.to_str().expect("utf-8 path").to_string();
        let proc = Proc::spawn(
            "nginx",
            ns.command_on(cpu, "nginx").args([
                "-p",
                &path(dir),
                "-e",
                &path(&dir.join("error.log")),
                "-c",
                &path(&conf),
            ]),
            &dir.join("stdout.log"),
            libc::SIGQUIT,
        )?;
        let mut nginx = Nginx {
            proc,
            dir: dir.to_path_buf(),
        };
        signals::wait_for(Duration::from_secs(10), "nginx to listen", || {
            if nginx.proc.exited().is_some() {
                return Some(false);
            }
            ns.listening(listen).then_some(true)
        })
        .and_then(|up| {
            if up {
                Ok(())
            } else {
                anyhow::bail!("nginx exited: {}", nginx.error_log())
            }
        })?;
        Ok(nginx)
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// Stops nginx gracefully (its buffered log is written out) and reads the access log,
    /// then deletes it (a run at 50k requests/s writes megabytes).
    pub fn stop(mut self) -> Result<Vec<LogLine>> {
        self.proc.stop();
        let path = self.dir.join("access.log");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(err) => return Err(err).with_context(|| format!("reading {path:?}")),
        };
        let lines = text.lines().filter_map(parse_line).collect();
        std::fs::remove_file(&path).ok();
        Ok(lines)
    }
}

fn parse_line(line: &str) -> Option<LogLine> {
    let mut fields = line.split(' ');
    Some(LogLine {
        msec: fields.next()?.parse().ok()?,
        uri: fields.next()?.to_string(),
        status: fields.next()?.parse().ok()?,
        request_length: fields.next()?.parse().ok()?,
    })
}
