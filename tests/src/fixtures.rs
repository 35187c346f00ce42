//! Set-ups the shadowing tests share: Mapping files, the user's example, and a production
//! server with a shadow server behind shadowd.

use std::{
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
};

use crate::{
    clients::{Piece, exchange},
    http_server::{Behaviour, HttpServer},
    netns::{ShadowHost, Topology},
    shadowd::Shadowd,
};

/// Where the production server listens (in the server namespace).
pub const PRODUCTION: &str = "198.18.0.2:80";
/// The shadow Mapping of the user's example.
pub const SHADOW_MAPPING: &str = "myservice-shadow-mapping";

static NEXT_FILE: AtomicU32 = AtomicU32::new(0);

/// `GET path` from the client namespace to production on a connection of its own, with the
/// user's example's Host; the response status.
pub fn production_get(topo: &Topology, path: &str) -> u16 {
    let request = format!("GET {path} HTTP/1.1\r\nHost: myservice\r\n\r\n");
    exchange(
        &topo.client,
        PRODUCTION,
        &[Piece::now(request.as_bytes())],
        1,
    )[0]
}

/// A Mapping file, removed on drop.
pub struct MappingFile(PathBuf);

impl MappingFile {
    /// Writes `text` to a new file of its own.
    pub fn new(text: &str) -> MappingFile {
        let n = NEXT_FILE.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("shadowd-test-{}-{n}.yaml", std::process::id()));
        std::fs::write(&path, text).expect("write Mapping file");
        MappingFile(path)
    }

    /// The file's path, as a command-line argument.
    pub fn arg(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for MappingFile {
    fn drop(&mut self) {
        std::fs::remove_file(&self.0).ok();
    }
}

/// The user's example as plain documents; `shadow_extra` adds fields to the shadow Mapping.
pub fn user_example(shadow_extra: &str) -> String {
    format!(
        "apiVersion: ambassador/v0\nkind: Mapping\nname: myservice-mapping\nprefix: /myservice/\nservice: myservice.default\n---\napiVersion: ambassador/v0\nkind: Mapping\nname: {SHADOW_MAPPING}\nprefix: /myservice/\nservice: myservice-shadow.default\nshadow: true\n{shadow_extra}"
    )
}

/// Client, production (with shadowd's interface) and a shadow host where
/// `myservice-shadow.default` resolves, with recording servers on both sides.
pub struct ShadowSetup {
    /// The client and production namespaces.
    pub topo: Topology,
    /// The shadow's namespace.
    pub shadow_host: ShadowHost,
    /// The production server, on the watched interface.
    pub production: HttpServer,
    /// The shadow server, where `myservice-shadow.default` resolves.
    pub shadow: HttpServer,
}

impl ShadowSetup {
    /// Production serves with `production`; the shadow answers every request at once.
    pub fn new(production: Behaviour) -> ShadowSetup {
        Self::with_shadow(production, Behaviour::default())
    }

    /// As `new`, with the shadow server behaving as `shadow` says.
    pub fn with_shadow(production: Behaviour, shadow: Behaviour) -> ShadowSetup {
        let topo = Topology::new();
        let shadow_host = ShadowHost::new(&topo);
        topo.server
            .set_hosts(&[(ShadowHost::ADDRESS, "myservice-shadow.default")]);
        let production = HttpServer::start_with(&topo.server, PRODUCTION, production);
        let shadow = HttpServer::start_with(
            &shadow_host.ns,
            &format!("{}:80", ShadowHost::ADDRESS),
            shadow,
        );
        ShadowSetup {
            topo,
            shadow_host,
            production,
            shadow,
        }
    }

    /// shadowd on the production interface with `mappings`.
    pub fn start(&self, mappings: &MappingFile) -> Shadowd<'_> {
        self.start_with_config(mappings.arg(), &[])
    }

    /// shadowd on the production interface with the configuration at `config` (a file or
    /// directory) and `extra` flags.
    pub fn start_with_config(&self, config: &str, extra: &[&str]) -> Shadowd<'_> {
        let mut args = vec!["--interface", Topology::SERVER_IF, "--config", config];
        args.extend_from_slice(extra);
        Shadowd::start(&self.topo.server, &args)
    }
}
