//! Parses a Mapping's `service`: `[http://|https://]host[:port]`, where host may be
//! `name`, `name.namespace`, a DNS name or an IP literal (`[v6]` with a port).

use super::mapping::{Scheme, Service};

/// Why a `service` value is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// A path, query or user information after the host.
    #[error("service {service} has extra URL components")]
    ExtraComponents {
        /// The value as written.
        service: String,
    },
    /// A port that is not a number from 1 to 65535.
    #[error("service {service} has an invalid port")]
    Port {
        /// The value as written.
        service: String,
    },
    /// Nothing before the port.
    #[error("service {service} has no host")]
    NoHost {
        /// The value as written.
        service: String,
    },
    /// A scheme other than `http://` and `https://`.
    #[error("service {service} has an unsupported scheme (only http:// and https://)")]
    Scheme {
        /// The value as written.
        service: String,
    },
}

/// Reads a Mapping's `service` value.
pub fn parse(service: &str) -> Result<Service, ServiceError> {
    let owned = || service.to_string();
    let trimmed = service.trim();
    let (scheme, rest) = if let Some(rest) = trimmed.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else if let Some(rest) = trimmed.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else if trimmed.contains("://") {
        return Err(ServiceError::Scheme { service: owned() });
    } else {
        (Scheme::Http, trimmed)
    };
    if rest.contains(['/', '?', '#', '@']) {
        return Err(ServiceError::ExtraComponents { service: owned() });
    }
    let default_port = if scheme == Scheme::Https { 443 } else { 80 };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or_else(|| ServiceError::NoHost { service: owned() })?;
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => return Err(ServiceError::Port { service: owned() }),
        };
        (format!("[{addr}]"), port)
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), Some(port)),
            None => (rest.to_string(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(ServiceError::NoHost { service: owned() });
    }
    let port = match port {
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| ServiceError::Port { service: owned() })?,
        None => default_port,
    };
    Ok(Service { scheme, host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> (Scheme, String, u16) {
        let s = parse(text).unwrap();
        (s.scheme, s.host, s.port)
    }

    #[test]
    fn every_service_form() {
        assert_eq!(ok("myservice"), (Scheme::Http, "myservice".into(), 80));
        assert_eq!(
            ok("myservice.default"),
            (Scheme::Http, "myservice.default".into(), 80)
        );
        assert_eq!(
            ok("myservice:8080"),
            (Scheme::Http, "myservice".into(), 8080)
        );
        assert_eq!(
            ok("myservice.prod:8080"),
            (Scheme::Http, "myservice.prod".into(), 8080)
        );
        assert_eq!(
            ok("http://myservice"),
            (Scheme::Http, "myservice".into(), 80)
        );
        assert_eq!(
            ok("https://myservice"),
            (Scheme::Https, "myservice".into(), 443)
        );
        assert_eq!(
            ok("https://myservice:8443"),
            (Scheme::Https, "myservice".into(), 8443)
        );
        assert_eq!(
            ok("[fd00::2]:8080"),
            (Scheme::Http, "[fd00::2]".into(), 8080)
        );
        assert_eq!(ok("198.18.0.2"), (Scheme::Http, "198.18.0.2".into(), 80));
    }

    #[test]
    fn bad_services_are_errors() {
        assert_eq!(
            parse("http://myservice/path"),
            Err(ServiceError::ExtraComponents {
                service: "http://myservice/path".into()
            })
        );
        assert!(matches!(
            parse("myservice:http"),
            Err(ServiceError::Port { .. })
        ));
        assert!(matches!(
            parse("myservice:0"),
            Err(ServiceError::Port { .. })
        ));
        assert!(matches!(
            parse("grpc://myservice"),
            Err(ServiceError::Scheme { .. })
        ));
        assert!(matches!(parse(""), Err(ServiceError::NoHost { .. })));
    }
}
