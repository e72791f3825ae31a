//! Rendering the lab's nginx configuration: `conf/nginx.conf` and the included `conf/app.conf`.
//!
//! Paths are written in double quotes; [`check_path`] rejects directories whose names nginx
//! could not take literally inside quotes.

use std::net::SocketAddr;
use std::path::Path;

use crate::LabError;

/// The `server_name` of the lab's server block.
pub(crate) const SERVER_NAME: &str = "lab.fix502.test";

/// What varies between scenarios in the config.
#[derive(Debug, Clone)]
pub(crate) struct ConfigSpec {
    /// Where the server listens.
    pub listen: SocketAddr,
    /// `user` directive value (`nobody nogroup`) when running as root.
    pub user: Option<String>,
    /// The `proxy_pass` target, e.g. `http://127.0.0.1:40123` or `http://backend`.
    pub proxy_pass: String,
    /// An `upstream backend { ... }` group: the server addresses, when the scenario uses one.
    pub group: Vec<String>,
}

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
         error_log \"{dir}/logs/error.log\" error;\n\
         \n\
         events {{\n    worker_connections 64;\n}}\n\
         \n\
         http {{\n\
         \x20   access_log \"{dir}/logs/access.log\";\n\
         \x20   client_body_temp_path \"{dir}/tmp/client_body\";\n\
         \x20   proxy_temp_path \"{dir}/tmp/proxy\";\n\
         \x20   fastcgi_temp_path \"{dir}/tmp/fastcgi\";\n\
         \x20   uwsgi_temp_path \"{dir}/tmp/uwsgi\";\n\
         \x20   scgi_temp_path \"{dir}/tmp/scgi\";\n\n"
    ));
    if !spec.group.is_empty() {
        out.push_str("    upstream backend {\n");
        for server in &spec.group {
            out.push_str(&format!("        server {server};\n"));
        }
        out.push_str("    }\n\n");
    }
    out.push_str(&format!(
        "    server {{\n\
         \x20       listen {listen};\n\
         \x20       server_name {SERVER_NAME};\n\
         \x20       include \"{dir}/conf/app.conf\";\n\
         \x20   }}\n\
         }}\n",
        listen = spec.listen
    ));
    out
}

/// The included app config: one location that proxies everything.
pub(crate) fn app_conf(proxy_pass: &str) -> String {
    format!(
        "# fix502 lab: the application's location\n\
         location / {{\n\
         \x20   proxy_pass \"{proxy_pass}\";\n\
         \x20   proxy_read_timeout 30s;\n\
         }}\n"
    )
}

/// The app config after a careless edit: `proxy_read_timeout` lost its `;`, so `nginx -t`
/// reports `unexpected "}" in .../conf/app.conf:5`.
pub(crate) fn broken_app_conf(proxy_pass: &str) -> String {
    format!(
        "# fix502 lab: the application's location (edited; the last directive lost its ';')\n\
         location / {{\n\
         \x20   proxy_pass \"{proxy_pass}\";\n\
         \x20   proxy_read_timeout 30s\n\
         }}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_conf_has_group_user_and_include() {
        let spec = ConfigSpec {
            listen: "127.0.0.1:8080".parse().expect("addr"),
            user: Some("nobody nogroup".to_owned()),
            proxy_pass: "http://backend".to_owned(),
            group: vec!["127.0.0.1:1".to_owned(), "127.0.0.1:2".to_owned()],
        };
        let conf = main_conf("/tmp/lab", &spec);
        assert!(conf.contains("user nobody nogroup;\n"));
        assert!(conf.contains("pid \"/tmp/lab/nginx.pid\";"));
        assert!(conf.contains("        server 127.0.0.1:2;\n"));
        assert!(conf.contains("listen 127.0.0.1:8080;"));
        assert!(conf.contains("include \"/tmp/lab/conf/app.conf\";"));
    }

    #[test]
    fn broken_app_conf_lacks_a_semicolon_on_line_4() {
        let broken = broken_app_conf("http://127.0.0.1:1");
        assert_eq!(broken.lines().nth(3), Some("    proxy_read_timeout 30s"));
        assert_eq!(app_conf("x").lines().count(), broken.lines().count());
    }

    #[test]
    fn odd_paths_are_rejected() {
        assert!(check_path(Path::new("/tmp/a\"b")).is_err());
        assert!(check_path(Path::new("/tmp/a$b")).is_err());
        assert_eq!(check_path(Path::new("/tmp/ok")).ok(), Some("/tmp/ok"));
    }
}
