//! Rendering the lab's nginx configuration: `conf/nginx.conf` and the included `conf/app.conf`.
//!
//! Paths are written in double quotes; [`check_path`] rejects directories whose names nginx
//! could not take literally inside quotes.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use crate::LabError;

/// The `server_name` of the lab's server block.
pub(crate) const SERVER_NAME: &str = "lab.fix502.test";

/// What varies between scenarios in the main config.
#[derive(Debug, Clone)]
pub(crate) struct ConfigSpec {
    /// Where the server listens.
    pub listen: SocketAddr,
    /// `user` directive value (`nobody nogroup`) when running as root.
    pub user: Option<String>,
    /// An `upstream backend { ... }` group: the server addresses, when the scenario uses one.
    pub group: Vec<String>,
    /// More directives of the `upstream backend` block (e.g. `keepalive 8`), without `;`.
    pub group_extra: Vec<String>,
    /// The level of the main `error_log` ([`ERROR_LEVEL`] or [`NOTICE_LEVEL`]).
    pub error_log_level: &'static str,
    /// Log with [`UPSTREAM_LOG_FORMAT`] instead of nginx's built-in `combined`.
    pub upstream_log: bool,
    /// More named upstream groups, after `backend`.
    pub groups: Vec<Group>,
    /// Whether other sites' server blocks are included from `conf/sites/*.conf` (after the
    /// lab's own server block, which stays the default server).
    pub sites: bool,
}

/// A named `upstream NAME { server ...; }` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Group {
    /// The group's name, as pass directives write it (`http://NAME`).
    pub name: String,
    /// Its servers' addresses.
    pub servers: Vec<String>,
}

/// Another site on the lab's nginx: a server block of its own on the same listen address,
/// in `conf/sites/SERVER_NAME.conf`, with one `location /`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Site {
    /// Its `server_name` (also its file name and the Host of the lab's request to it).
    pub server_name: String,
    /// The directives of its `location /`, without `;`, the pass directive first.
    pub location: Vec<String>,
}

/// The directory of the other sites' files, relative to the lab dir.
pub(crate) const SITES_DIR: &str = "conf/sites";

/// An access-log format that records every upstream attempt, as operators add it to see who
/// made a 502 (`combined` plus the `$upstream_*` variables).
pub(crate) const UPSTREAM_LOG_FORMAT: &str = "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\" ua=\"$upstream_addr\" us=\"$upstream_status\" uht=\"$upstream_header_time\" urt=\"$upstream_response_time\" ucs=\"$upstream_cache_status\"";

/// The usual lab error-log level: only the failures.
pub(crate) const ERROR_LEVEL: &str = "error";
/// An error-log level that also records signals and reloads (`signal 1 (SIGHUP) received`).
pub(crate) const NOTICE_LEVEL: &str = "notice";

/// Fails when `dir` contains characters that would need escaping in a quoted nginx string
/// (or would be read as a variable).
pub(crate) fn check_path(dir: &Path) -> Result<&str, LabError> {
    let text = dir.to_str().ok_or_else(|| {
        LabError::Unsupported(format!("lab dir {} is not valid UTF-8", dir.display()))
    })?;
    if text.contains(['"', '\\', '$', '\n', '\r']) {
        return Err(LabError::Unsupported(format!(
            "lab dir {text} contains a character nginx cannot take literally; set TMPDIR to a plain path"
        )));
    }
    Ok(text)
}

/// The main config: process settings, logs, temp paths, the server block (which includes
/// `conf/app.conf`). `dir` must have passed [`check_path`].
pub(crate) fn main_conf(dir: &str, spec: &ConfigSpec) -> String {
    let mut out = String::from("# fix502 lab: generated, removed with the lab directory\n");
    if let Some(user) = &spec.user {
        out.push_str(&format!("user {user};\n"));
    }
    out.push_str(&format!(
        "worker_processes 1;\n\
         pid \"{dir}/nginx.pid\";\n\
         error_log \"{dir}/logs/error.log\" {level};\n\
         \n\
         events {{\n    worker_connections 64;\n}}\n\
         \n\
         http {{\n\
         {access}\
         \x20   access_log \"{dir}/logs/access.log\"{format};\n\
         \x20   client_body_temp_path \"{dir}/tmp/client_body\";\n\
         \x20   proxy_temp_path \"{dir}/tmp/proxy\";\n\
         \x20   fastcgi_temp_path \"{dir}/tmp/fastcgi\";\n\
         \x20   uwsgi_temp_path \"{dir}/tmp/uwsgi\";\n\
         \x20   scgi_temp_path \"{dir}/tmp/scgi\";\n\n",
        level = spec.error_log_level,
        access = if spec.upstream_log {
            format!("    log_format upstreamlog '{UPSTREAM_LOG_FORMAT}';\n")
        } else {
            String::new()
        },
        format = if spec.upstream_log {
            " upstreamlog"
        } else {
            ""
        },
    ));
    if !spec.group.is_empty() {
        out.push_str("    upstream backend {\n");
        for server in &spec.group {
            out.push_str(&format!("        server {server};\n"));
        }
        for directive in &spec.group_extra {
            out.push_str(&format!("        {directive};\n"));
        }
        out.push_str("    }\n\n");
    }
    for group in &spec.groups {
        out.push_str(&format!("    upstream {} {{\n", group.name));
        for server in &group.servers {
            out.push_str(&format!("        server {server};\n"));
        }
        out.push_str("    }\n\n");
    }
    out.push_str(&format!(
        "    server {{\n\
         \x20       listen {listen};\n\
         \x20       server_name {SERVER_NAME};\n\
         \x20       include \"{dir}/conf/app.conf\";\n\
         \x20   }}\n",
        listen = spec.listen
    ));
    if spec.sites {
        out.push_str(&format!("\n    include \"{dir}/{SITES_DIR}/*.conf\";\n"));
    }
    out.push_str("}\n");
    out
}

/// The file of another site: its server block on `listen`.
pub(crate) fn site_conf(listen: SocketAddr, site: &Site) -> String {
    let mut out = format!(
        "# fix502 lab: another site on the same nginx\n\
         server {{\n\
         \x20   listen {listen};\n\
         \x20   server_name {};\n\
         \x20   location / {{\n",
        site.server_name
    );
    for directive in &site.location {
        out.push_str(&format!("        {directive};\n"));
    }
    out.push_str("    }\n}\n");
    out
}

/// The included app config: one `location /` with `directives` (each without its `;`), the
/// pass directive first.
pub(crate) fn app_conf(directives: &[String]) -> String {
    let mut out = String::from("# fix502 lab: the application's location\nlocation / {\n");
    for directive in directives {
        out.push_str(&format!("    {directive};\n"));
    }
    out.push_str("}\n");
    out
}

/// The app config after a careless edit: the last directive lost its `;`, so `nginx -t`
/// reports `unexpected "}" in .../conf/app.conf:N` (N = the line of the closing brace).
pub(crate) fn broken_app_conf(directives: &[String]) -> String {
    let mut out = String::from(
        "# fix502 lab: the application's location (edited; the last directive lost its ';')\n\
         location / {\n",
    );
    let last = directives.len().saturating_sub(1);
    for (i, directive) in directives.iter().enumerate() {
        let end = if i == last { "" } else { ";" };
        out.push_str(&format!("    {directive}{end}\n"));
    }
    out.push_str("}\n");
    out
}

/// An `/etc/hosts` text with the usual localhost lines and `name` at `ip`.
pub(crate) fn hosts_file(name: &str, ip: IpAddr) -> String {
    format!(
        "# fix502 lab: the hosts file nginx sees (bind-mounted on /etc/hosts in its namespace)\n\
         127.0.0.1 localhost\n\
         ::1 localhost ip6-localhost ip6-loopback\n\
         {ip} {name}\n"
    )
}

/// `location /` directives that proxy to `target` (e.g. `http://127.0.0.1:40123`).
pub(crate) fn proxy(target: &str) -> Vec<String> {
    proxy_with_read_timeout(target, "30s")
}

/// Like [`proxy`], with `proxy_read_timeout` set to `timeout` (an nginx time, e.g. `1s`).
pub(crate) fn proxy_with_read_timeout(target: &str, timeout: &str) -> Vec<String> {
    vec![
        format!("proxy_pass \"{target}\""),
        format!("proxy_read_timeout {timeout}"),
    ]
}

/// `location /` directives that pass every request to the FastCGI server `addr`, running
/// `script`, with the usual parameters written out (the lab does not include
/// `/etc/nginx/fastcgi_params`).
pub(crate) fn fastcgi(addr: &str, script: &str) -> Vec<String> {
    let mut out = vec![format!("fastcgi_pass {addr}")];
    let params = [
        ("SCRIPT_FILENAME", format!("\"{script}\"")),
        ("SCRIPT_NAME", "/index.php".to_owned()),
        ("QUERY_STRING", "$query_string".to_owned()),
        ("REQUEST_METHOD", "$request_method".to_owned()),
        ("CONTENT_TYPE", "$content_type".to_owned()),
        ("CONTENT_LENGTH", "$content_length".to_owned()),
        ("REQUEST_URI", "$request_uri".to_owned()),
        ("DOCUMENT_URI", "$document_uri".to_owned()),
        ("SERVER_PROTOCOL", "$server_protocol".to_owned()),
        ("REQUEST_SCHEME", "$scheme".to_owned()),
        ("GATEWAY_INTERFACE", "CGI/1.1".to_owned()),
        ("SERVER_SOFTWARE", "nginx/$nginx_version".to_owned()),
        ("REMOTE_ADDR", "$remote_addr".to_owned()),
        ("REMOTE_PORT", "$remote_port".to_owned()),
        ("SERVER_ADDR", "$server_addr".to_owned()),
        ("SERVER_PORT", "$server_port".to_owned()),
        ("SERVER_NAME", "$server_name".to_owned()),
    ];
    out.extend(
        params
            .iter()
            .map(|(name, value)| format!("fastcgi_param {name} {value}")),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_conf_has_group_user_and_include() {
        let spec = ConfigSpec {
            listen: "127.0.0.1:8080".parse().expect("addr"),
            user: Some("nobody nogroup".to_owned()),
            group: vec!["127.0.0.1:1".to_owned(), "127.0.0.1:2".to_owned()],
            group_extra: vec!["keepalive 8".to_owned()],
            error_log_level: NOTICE_LEVEL,
            upstream_log: true,
            groups: vec![Group {
                name: "shop".to_owned(),
                servers: vec!["127.0.0.1:3".to_owned()],
            }],
            sites: true,
        };
        let conf = main_conf("/tmp/lab", &spec);
        assert!(conf.contains("error_log \"/tmp/lab/logs/error.log\" notice;\n"));
        assert!(conf.contains("    log_format upstreamlog '$remote_addr - "));
        assert!(conf.contains("    access_log \"/tmp/lab/logs/access.log\" upstreamlog;\n"));
        assert!(conf.contains("user nobody nogroup;\n"));
        assert!(conf.contains("pid \"/tmp/lab/nginx.pid\";"));
        assert!(conf.contains("        server 127.0.0.1:2;\n        keepalive 8;\n    }\n"));
        assert!(conf.contains("listen 127.0.0.1:8080;"));
        assert!(conf.contains("include \"/tmp/lab/conf/app.conf\";"));
        assert!(conf.contains("    upstream shop {\n        server 127.0.0.1:3;\n    }\n"));
        assert!(conf.ends_with("    }\n\n    include \"/tmp/lab/conf/sites/*.conf\";\n}\n"));
        let plain = main_conf(
            "/tmp/lab",
            &ConfigSpec {
                groups: Vec::new(),
                sites: false,
                ..spec
            },
        );
        assert!(
            plain.ends_with("/tmp/lab/conf/app.conf\";\n    }\n}\n"),
            "{plain}"
        );
        assert!(!plain.contains("upstream shop"));
    }

    #[test]
    fn a_site_is_a_server_block_with_one_location() {
        let site = Site {
            server_name: "shop.lab.fix502.test".to_owned(),
            location: proxy("http://shop"),
        };
        let conf = site_conf("127.0.0.1:8080".parse().expect("addr"), &site);
        assert!(
            conf.contains("    listen 127.0.0.1:8080;\n    server_name shop.lab.fix502.test;\n")
        );
        assert!(conf.contains("    location / {\n        proxy_pass \"http://shop\";\n"));
        assert!(conf.ends_with("    }\n}\n"));
    }

    #[test]
    fn broken_app_conf_lacks_a_semicolon_on_line_4() {
        let directives = proxy("http://127.0.0.1:1");
        let broken = broken_app_conf(&directives);
        assert_eq!(broken.lines().nth(3), Some("    proxy_read_timeout 30s"));
        let good = app_conf(&directives);
        assert_eq!(
            good.lines().nth(2),
            Some("    proxy_pass \"http://127.0.0.1:1\";")
        );
        assert_eq!(good.lines().nth(3), Some("    proxy_read_timeout 30s;"));
        assert_eq!(good.lines().count(), broken.lines().count());
    }

    #[test]
    fn fastcgi_writes_its_params() {
        let conf = app_conf(&fastcgi("127.0.0.1:9000", "/tmp/lab/www/index.php"));
        assert!(conf.contains("    fastcgi_pass 127.0.0.1:9000;\n"));
        assert!(conf.contains("    fastcgi_param SCRIPT_FILENAME \"/tmp/lab/www/index.php\";\n"));
        assert!(conf.contains("    fastcgi_param REQUEST_METHOD $request_method;\n"));
    }

    #[test]
    fn hosts_file_maps_the_name() {
        let text = hosts_file("app.lab.fix502.test", IpAddr::from([127, 0, 0, 2]));
        assert!(
            text.ends_with("\n127.0.0.2 app.lab.fix502.test\n"),
            "{text}"
        );
        assert!(text.contains("\n127.0.0.1 localhost\n"), "{text}");
    }

    #[test]
    fn odd_paths_are_rejected() {
        assert!(check_path(Path::new("/tmp/a\"b")).is_err());
        assert!(check_path(Path::new("/tmp/a$b")).is_err());
        assert_eq!(check_path(Path::new("/tmp/ok")).ok(), Some("/tmp/ok"));
    }
}
