//! Copies to an `https://` shadow service: a TLS terminator from Debian (socat, OpenSSL) in
//! front of the recording shadow server, with a certificate from a test CA. The copies arrive
//! byte for byte when the CA is given (`--shadow-ca-file`), are refused and counted when it is
//! not, and arrive again with `--unsafe-skip-shadow-tls-verify`; a reply whose TLS breaks
//! half-way is counted as `io`.

use std::{
    io::{Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use shadowd_tests::{
    clients::{Piece, exchange},
    eventually,
    fixtures::{MappingFile, PRODUCTION, SHADOW_MAPPING, ShadowSetup, user_example},
    http_server::Behaviour,
    netns::{Netns, ShadowHost},
    run,
    shadowd::Shadowd,
    shadowing::expected_copy,
};

/// The name the shadow's certificate is issued for: the service of the user's shadow Mapping.
const SHADOW_NAME: &str = "myservice-shadow.default";

const GET: &[u8] = b"GET /myservice/a HTTP/1.1\r\nHost: myservice\r\n\r\n";
const POST: &[u8] =
    b"POST /myservice/b HTTP/1.1\r\nHost: myservice\r\nContent-Length: 5\r\n\r\nhello";

/// A CA and a leaf certificate for [`SHADOW_NAME`] signed by it, in a directory removed on
/// drop.
struct TestCa {
    dir: PathBuf,
}

impl TestCa {
    fn new() -> TestCa {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("shadowd-tls-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create cert dir");
        let ca = TestCa { dir };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        run(Command::new("openssl")
            .current_dir(&ca.dir)
            .args(["req", "-x509", "-nodes", "-days", "2"])
            .args(ec)
            .args(["-keyout", "ca.key", "-out", "ca.pem"])
            .args(["-subj", "/CN=shadowd test CA"])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]));
        run(Command::new("openssl")
            .current_dir(&ca.dir)
            .args(["req", "-nodes"])
            .args(ec)
            .args(["-keyout", "leaf.key", "-out", "leaf.csr"])
            .args(["-subj", &format!("/CN={SHADOW_NAME}")]));
        std::fs::write(
            ca.dir.join("leaf.ext"),
            format!(
                "subjectAltName=DNS:{SHADOW_NAME}\nbasicConstraints=CA:FALSE\n\
                 keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
            ),
        )
        .expect("write extensions");
        run(Command::new("openssl")
            .current_dir(&ca.dir)
            .args(["x509", "-req", "-days", "2", "-in", "leaf.csr"])
            .args(["-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"])
            .args(["-extfile", "leaf.ext", "-out", "leaf.pem"]));
        ca
    }

    fn path(&self, file: &str) -> String {
        self.dir
            .join(file)
            .to_str()
            .expect("utf-8 path")
            .to_string()
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// socat terminating TLS on the shadow host's port 443 and passing each connection to the
/// shadow server on port 80; its process group is killed on drop.
struct TlsTerminator(Child);

impl TlsTerminator {
    fn start(ns: &Netns, dir: &Path) -> TlsTerminator {
        let listen = format!(
            "OPENSSL-LISTEN:443,bind={},reuseaddr,fork,cert={},key={},verify=0",
            ShadowHost::ADDRESS,
            dir.join("leaf.pem").display(),
            dir.join("leaf.key").display()
        );
        let child = ns
            .command("socat")
            .args([&listen, &format!("TCP:{}:80", ShadowHost::ADDRESS)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start socat");
        let terminator = TlsTerminator(child);
        let listening = format!("{}:443", ShadowHost::ADDRESS);
        eventually(Duration::from_secs(10), "socat listening", || {
            let sockets = run(ns.command("ss").args(["-Htln"]));
            sockets.contains(&listening).then_some(())
        });
        terminator
    }
}

impl Drop for TlsTerminator {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this guard started; no memory is involved.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        self.0.wait().ok();
    }
}

/// The user's example with the shadow service reached over TLS.
fn https_mappings() -> MappingFile {
    https_mappings_with("", "")
}

/// The same with `shadow_extra` fields and the service's port written as `port` (`:8443`,
/// or empty for 443).
fn https_mappings_with(shadow_extra: &str, port: &str) -> MappingFile {
    let plain = user_example(shadow_extra);
    let https = plain.replace(
        &format!("service: {SHADOW_NAME}\n"),
        &format!("service: https://{SHADOW_NAME}{port}\n"),
    );
    assert_ne!(plain, https, "the example names the shadow service");
    MappingFile::new(&https)
}

/// Sends a GET and a POST on one connection; production answers both.
fn send_two(setup: &ShadowSetup) {
    let statuses = exchange(
        &setup.topo.client,
        PRODUCTION,
        &[Piece::now(&[GET, POST].concat())],
        2,
    );
    assert_eq!(statuses, [200, 200]);
}

/// Production and shadow servers, the CA, and the terminator in front of the shadow.
fn start_tls() -> (ShadowSetup, TestCa, TlsTerminator, MappingFile) {
    let setup = ShadowSetup::new(Behaviour::default());
    let ca = TestCa::new();
    let terminator = TlsTerminator::start(&setup.shadow_host.ns, &ca.dir);
    (setup, ca, terminator, https_mappings())
}

fn assert_copied_over_tls(setup: &ShadowSetup, daemon: &Shadowd<'_>) {
    send_two(setup);
    let scrape = daemon.accounted_for(SHADOW_MAPPING, 2, Duration::from_secs(20));
    assert_eq!(scrape.replay("copied_requests_total", SHADOW_MAPPING), 2);
    assert_eq!(
        setup.shadow.received(),
        [expected_copy(GET), expected_copy(POST)],
        "the copies, in order, byte for byte behind the TLS terminator"
    );
}

#[test]
fn copies_reach_an_https_shadow_whose_ca_is_given() {
    let (setup, ca, _terminator, mappings) = start_tls();
    let ca_file = ca.path("ca.pem");
    let daemon = setup.start_with_config(mappings.arg(), &["--shadow-ca-file", &ca_file]);
    assert_copied_over_tls(&setup, &daemon);
}

#[test]
fn an_https_shadow_with_an_unknown_ca_gets_nothing_and_each_copy_is_counted() {
    let (setup, _ca, _terminator, mappings) = start_tls();
    let daemon = setup.start(&mappings);
    send_two(&setup);
    let scrape = daemon.accounted_for(SHADOW_MAPPING, 2, Duration::from_secs(20));
    assert_eq!(scrape.replay("copied_requests_total", SHADOW_MAPPING), 0);
    assert_eq!(
        scrape.sum(
            "shadowd_replay_dropped_requests_total",
            &[("mapping", SHADOW_MAPPING), ("reason", "connect_failed")]
        ),
        2,
        "a certificate that does not verify is a connection that failed, once per copy"
    );
    assert!(
        setup.shadow.received().is_empty(),
        "no byte of a copy passes an unverified handshake"
    );
}

#[test]
fn the_unsafe_skip_flag_sends_copies_to_a_shadow_whose_certificate_does_not_verify() {
    let (setup, _ca, _terminator, mappings) = start_tls();
    let daemon = setup.start_with_config(mappings.arg(), &["--unsafe-skip-shadow-tls-verify"]);
    assert_copied_over_tls(&setup, &daemon);
}

/// A TCP relay on the shadow host's `port` to the terminator's 443, for one connection,
/// that flips one byte of what the shadow sends once `after` bytes of it have passed: a TLS
/// record that fails its integrity check in the middle of a reply.
fn corrupting_relay(ns: &Netns, port: u16, after: usize) {
    let listener = ns
        .enter(|| TcpListener::bind((ShadowHost::ADDRESS, port)))
        .expect("bind the relay");
    ns.spawn(move || {
        let (client, _) = listener.accept().expect("accept");
        let shadow = TcpStream::connect((ShadowHost::ADDRESS, 443)).expect("reach socat");
        let (mut to_shadow, mut from_client) =
            (shadow.try_clone().unwrap(), client.try_clone().unwrap());
        std::thread::spawn(move || {
            std::io::copy(&mut from_client, &mut to_shadow).ok();
            to_shadow.shutdown(Shutdown::Write).ok();
        });
        let (mut from_shadow, mut to_client) = (shadow, client);
        let (mut passed, mut flipped) = (0, false);
        let mut chunk = [0u8; 4096];
        while let Ok(n) = from_shadow.read(&mut chunk) {
            if n == 0 {
                break;
            }
            if passed >= after && !flipped {
                chunk[0] ^= 0xff;
                flipped = true;
            }
            passed += n;
            if to_client.write_all(&chunk[..n]).is_err() {
                break;
            }
        }
        to_client.shutdown(Shutdown::Write).ok();
    });
}

#[test]
fn a_shadow_reply_whose_tls_breaks_half_way_is_counted_as_io() {
    let (setup, ca, _terminator, _) = start_tls();
    corrupting_relay(&setup.shadow_host.ns, 8443, 20_000);
    // The copy asks the shadow server for 100,000 bytes: several TLS records, the first
    // of them whole before the broken one.
    let mappings = https_mappings_with("rewrite: /bytes/\n", ":8443");
    let ca_file = ca.path("ca.pem");
    let daemon = setup.start_with_config(mappings.arg(), &["--shadow-ca-file", &ca_file]);
    let get = b"GET /myservice/100000 HTTP/1.1\r\nHost: myservice\r\n\r\n";
    let statuses = exchange(&setup.topo.client, PRODUCTION, &[Piece::now(get)], 1);
    assert_eq!(statuses, [200]);
    let scrape = daemon.accounted_for(SHADOW_MAPPING, 1, Duration::from_secs(20));
    assert_eq!(
        scrape.by_label("shadowd_replay_dropped_requests_total", "reason"),
        [("io".to_string(), 1)].into(),
        "a reply that began and then failed its TLS is an I/O failure, not a reset"
    );
    assert_eq!(setup.shadow.received().len(), 1, "the copy was sent once");
}
