//! What a finding or a diagnosis is about: one address nginx connects to (the same
//! [`Peer`] the config's endpoints and the probes use), a host name without a port, or an
//! upstream group. It is written, and read back, as nginx writes it in its error log.

use std::cmp::Ordering;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use fix502_nginx::view::Peer;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The upstream a finding or a diagnosis is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Upstream {
    /// An address nginx connects to: `127.0.0.1:8000`, `[::1]:8000`, `unix:/run/app.sock`,
    /// `app.internal:8080`.
    Peer(Peer),
    /// A host name without a port (a name nginx's resolver failed on, when no pass directive
    /// gives its port).
    Name(String),
    /// An upstream group by its name (`no live upstreams while connecting to upstream
    /// "backend"`).
    Group(String),
}

impl Upstream {
    /// Reads an upstream as nginx writes one: `unix:` and a path, `host:port` (brackets
    /// around an IPv6 address), else a bare name. A bare name is taken for a host name; use
    /// [`Upstream::Group`] for a group.
    pub fn parse(text: &str) -> Self {
        if let Some(path) = text.strip_prefix("unix:") {
            return Self::Peer(Peer::Unix(path.into()));
        }
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Self::Peer(Peer::inet(&addr.ip().to_string(), addr.port()));
        }
        match text.rsplit_once(':') {
            Some((host, port))
                if !host.is_empty()
                    && !host.contains(':')
                    && let Ok(port) = port.parse::<u16>() =>
            {
                Self::Peer(Peer::inet(host, port))
            }
            _ => Self::Name(text.to_owned()),
        }
    }

    /// The peer, when this is one.
    pub fn peer(&self) -> Option<&Peer> {
        match self {
            Self::Peer(p) => Some(p),
            _ => None,
        }
    }

    /// The TCP port, when there is one.
    pub fn port(&self) -> Option<u16> {
        match self {
            Self::Peer(Peer::Inet { port, .. }) => Some(*port),
            _ => None,
        }
    }

    /// The host of a TCP peer (an IPv6 address without brackets), or the bare name.
    pub fn host(&self) -> Option<&str> {
        match self {
            Self::Peer(Peer::Inet { host, .. }) => Some(host),
            Self::Name(name) => Some(name),
            _ => None,
        }
    }

    /// The IP address of a TCP peer written as one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.peer().and_then(Peer::ip)
    }

    /// The socket path of a unix peer.
    pub fn unix_path(&self) -> Option<&Path> {
        match self {
            Self::Peer(Peer::Unix(path)) => Some(path),
            _ => None,
        }
    }

    /// The group name, when this is a group.
    pub fn group(&self) -> Option<&str> {
        match self {
            Self::Group(name) => Some(name),
            _ => None,
        }
    }
}

impl From<Peer> for Upstream {
    fn from(peer: Peer) -> Self {
        Self::Peer(peer)
    }
}

impl From<&Peer> for Upstream {
    fn from(peer: &Peer) -> Self {
        Self::Peer(peer.clone())
    }
}

impl From<SocketAddr> for Upstream {
    fn from(addr: SocketAddr) -> Self {
        Self::Peer(Peer::inet(&addr.ip().to_string(), addr.port()))
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Peer(p) => p.fmt(f),
            Self::Name(n) | Self::Group(n) => f.write_str(n),
        }
    }
}

impl PartialOrd for Upstream {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Upstream {
    /// As nginx writes them (so lists read in a stable, familiar order).
    fn cmp(&self, other: &Self) -> Ordering {
        let kind = |u: &Self| match u {
            Self::Peer(_) => 0,
            Self::Name(_) => 1,
            Self::Group(_) => 2,
        };
        self.to_string()
            .cmp(&other.to_string())
            .then(kind(self).cmp(&kind(other)))
    }
}

impl Serialize for Upstream {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Upstream {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(Self::parse(&text))
    }
}

impl JsonSchema for Upstream {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Upstream".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_it_writes() {
        for text in [
            "127.0.0.1:8000",
            "[::1]:8000",
            "unix:/run/php/php8.2-fpm.sock",
            "app.internal:8080",
            "accounts.example",
        ] {
            assert_eq!(Upstream::parse(text).to_string(), text);
        }
        assert_eq!(Upstream::parse("[::1]:80").port(), Some(80));
        assert_eq!(Upstream::parse("[::1]:80").host(), Some("::1"));
        assert_eq!(
            Upstream::parse("unix:/a.sock").unix_path(),
            Some(Path::new("/a.sock"))
        );
        assert_eq!(
            Upstream::parse("app:80"),
            Upstream::Peer(Peer::inet("app", 80))
        );
        assert_eq!(Upstream::parse("app"), Upstream::Name("app".to_owned()));
        assert!(Upstream::parse("127.0.0.1:9") < Upstream::parse("127.0.0.2:1"));
    }
}
