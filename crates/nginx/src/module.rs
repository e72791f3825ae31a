//! The pass modules (`proxy_pass`, `fastcgi_pass`, `uwsgi_pass`, `scgi_pass`, `grpc_pass`,
//! `memcached_pass`): their directive names, schemes and default ports. Only what names a
//! module lives here; what a config does with it is in [`crate::view`] and
//! [`crate::settings`].

/// The module behind a pass directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum PassModule {
    /// `proxy_pass`
    Proxy,
    /// `fastcgi_pass`
    FastCgi,
    /// `uwsgi_pass`
    Uwsgi,
    /// `scgi_pass`
    Scgi,
    /// `grpc_pass`
    Grpc,
    /// `memcached_pass`
    Memcached,
}

impl PassModule {
    /// Every module, in a stable order.
    pub const ALL: [Self; 6] = [
        Self::Proxy,
        Self::FastCgi,
        Self::Uwsgi,
        Self::Scgi,
        Self::Grpc,
        Self::Memcached,
    ];

    /// The directive name, e.g. `"proxy_pass"`.
    pub fn directive(&self) -> &'static str {
        match self {
            Self::Proxy => "proxy_pass",
            Self::FastCgi => "fastcgi_pass",
            Self::Uwsgi => "uwsgi_pass",
            Self::Scgi => "scgi_pass",
            Self::Grpc => "grpc_pass",
            Self::Memcached => "memcached_pass",
        }
    }

    /// The module of a directive name, if it is a pass directive.
    pub fn from_directive(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.directive() == name)
    }

    /// The scheme used when the argument names none (`"http"` for proxy, ...).
    pub fn default_scheme(&self) -> &'static str {
        match self {
            Self::Proxy => "http",
            Self::FastCgi => "fastcgi",
            Self::Uwsgi => "uwsgi",
            Self::Scgi => "scgi",
            Self::Grpc => "grpc",
            Self::Memcached => "memcached",
        }
    }

    /// The URL prefixes nginx strips from this module's argument, with their schemes and
    /// default ports.
    pub(crate) fn prefixes(&self) -> &'static [(&'static str, &'static str, Option<u16>)] {
        match self {
            Self::Proxy => &[
                ("http://", "http", Some(80)),
                ("https://", "https", Some(443)),
            ],
            Self::Uwsgi => &[("uwsgi://", "uwsgi", None), ("suwsgi://", "suwsgi", None)],
            Self::Grpc => &[("grpc://", "grpc", None), ("grpcs://", "grpcs", None)],
            Self::FastCgi | Self::Scgi | Self::Memcached => &[],
        }
    }
}
