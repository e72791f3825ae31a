//! Which app server a process is, from its command name and command line alone: process
//! titles, program names, and servers run by an interpreter. Pure.

use super::types::AppServerKind;

/// Names the app server from its command name (`comm`) and command line. Pure.
///
/// Recognises process titles (`php-fpm: pool www`, `gunicorn: master [app]`,
/// `puma 6.4.0 (tcp://...)`, `nginx: worker process`), programs by base name
/// (`/usr/bin/uwsgi`, `php-fpm8.2`, `java`), and servers run by an interpreter
/// (`python3 -m gunicorn`, `/usr/bin/python3 /venv/bin/uvicorn`, `ruby bin/puma`,
/// `bundle exec unicorn`).
pub fn kind_of(process: &str, cmdline: &[String]) -> AppServerKind {
    let argv0 = cmdline.first().map_or("", String::as_str);
    let program = program_name(argv0);
    let comm = program_name(process);
    if let Some(kind) = kind_by_name(&program).or_else(|| kind_by_name(&comm)) {
        return kind;
    }
    let rest = cmdline.get(1..).unwrap_or_default();
    if is_python(&program) || (argv0.is_empty() && is_python(&comm)) {
        return python_target(rest)
            .and_then(|name| kind_by_name(&name))
            .unwrap_or(AppServerKind::Python);
    }
    if is_ruby(&program) || (argv0.is_empty() && is_ruby(&comm)) {
        return ruby_target(rest)
            .and_then(|name| kind_by_name(&name))
            .unwrap_or(AppServerKind::Ruby);
    }
    AppServerKind::Other
}

/// The lower-cased base name of the first word of `text`, without a trailing `:`
/// (`/usr/bin/python3` → `python3`, `php-fpm: pool www` → `php-fpm`).
fn program_name(text: &str) -> String {
    let word = text.split_whitespace().next().unwrap_or("");
    let base = word.rsplit('/').next().unwrap_or(word);
    base.trim_end_matches(':').to_ascii_lowercase()
}

fn kind_by_name(name: &str) -> Option<AppServerKind> {
    use AppServerKind as K;
    let kind = match name {
        "gunicorn" => K::Gunicorn,
        "uvicorn" => K::Uvicorn,
        "hypercorn" => K::Hypercorn,
        "daphne" => K::Daphne,
        "puma" => K::Puma,
        "unicorn" | "unicorn_rails" => K::Unicorn,
        "node" | "nodejs" | "next-server" => K::Node,
        "java" => K::Java,
        "nginx" => K::Nginx,
        "apache2" | "httpd" | "apache" => K::Apache,
        _ if name.starts_with("php-fpm") => K::PhpFpm,
        _ if name.starts_with("uwsgi") => K::Uwsgi,
        _ if name.starts_with("passenger") => K::Passenger,
        _ if name
            .strip_prefix("php")
            .is_some_and(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.')) =>
        {
            K::Php
        }
        _ => return None,
    };
    Some(kind)
}

fn is_python(name: &str) -> bool {
    name.starts_with("python") || name.starts_with("pypy")
}

fn is_ruby(name: &str) -> bool {
    name.starts_with("ruby")
}

/// What a Python interpreter runs: the module of `-m` (first dotted part) or the script's
/// base name.
fn python_target(args: &[String]) -> Option<String> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-m" => {
                let module = args.next()?;
                return Some(
                    module
                        .split('.')
                        .next()
                        .unwrap_or(module)
                        .to_ascii_lowercase(),
                );
            }
            "-c" => return None,
            "-W" | "-X" | "-Q" => {
                args.next();
            }
            _ if arg.starts_with('-') => {}
            _ => return Some(program_name(arg)),
        }
    }
    None
}

/// What a Ruby interpreter runs: the script's base name, looking through `bundle exec`.
fn ruby_target(args: &[String]) -> Option<String> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-I" | "-r" | "-C" | "-E" => {
                args.next();
            }
            _ if arg.starts_with('-') => {}
            _ => {
                let name = program_name(arg);
                if name == "bundle" || name == "bundler" {
                    // bundle exec NAME
                    let next = args.next()?;
                    if next == "exec" {
                        return args.next().map(|s| program_name(s));
                    }
                    return None;
                }
                return Some(name);
            }
        }
    }
    None
}

/// The arguments after the server's own program (`/usr/bin/gunicorn` or `-m gunicorn`) in
/// a command line; all but the first when the program is not found.
pub(super) fn args_after<'a>(cmdline: &'a [String], names: &[&str]) -> &'a [String] {
    let mut previous: Option<&str> = None;
    for (i, arg) in cmdline.iter().enumerate() {
        let base = program_name(arg);
        let module = arg.split('.').next().unwrap_or(arg);
        if names.contains(&base.as_str()) || (previous == Some("-m") && names.contains(&module)) {
            return cmdline.get(i + 1..).unwrap_or_default();
        }
        previous = Some(arg);
    }
    cmdline.get(1..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::appserver::test_support::args;

    #[test]
    fn kinds_of_realistic_command_lines() {
        use AppServerKind as K;
        let cases: &[(&str, &str, K)] = &[
            (
                "python3",
                "/usr/bin/python3 -m gunicorn app:app -b 127.0.0.1:8000",
                K::Gunicorn,
            ),
            (
                "gunicorn",
                "/usr/bin/python3 /usr/bin/gunicorn app:app -b 0.0.0.0:8000 --timeout 60 --keep-alive 5",
                K::Gunicorn,
            ),
            (
                "gunicorn",
                "/usr/bin/gunicorn app:app -b unix:/run/app.sock",
                K::Gunicorn,
            ),
            ("gunicorn: maste", "gunicorn: master [app:app]", K::Gunicorn),
            (
                "uwsgi",
                "/usr/bin/uwsgi --ini /etc/uwsgi/apps-enabled/app.ini",
                K::Uwsgi,
            ),
            ("uwsgi", "uWSGI worker 1", K::Uwsgi),
            (
                "uvicorn",
                "/venv/bin/python /venv/bin/uvicorn main:app --timeout-keep-alive 3",
                K::Uvicorn,
            ),
            (
                "python3.11",
                "python3.11 -m uvicorn.main main:app",
                K::Uvicorn,
            ),
            (
                "hypercorn",
                "/usr/bin/python3 /usr/local/bin/hypercorn main:app -b :8000",
                K::Hypercorn,
            ),
            (
                "daphne",
                "/usr/bin/python3 /usr/bin/daphne -b 0.0.0.0 -p 8001 proj.asgi:application",
                K::Daphne,
            ),
            ("node", "node server.js", K::Node),
            ("node", "/usr/bin/node /srv/app/dist/main.js", K::Node),
            ("next-server (v1", "next-server (v14.2.3)", K::Node),
            (
                "php-fpm8.2",
                "php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)",
                K::PhpFpm,
            ),
            ("php-fpm8.2", "php-fpm: pool www", K::PhpFpm),
            ("php-fpm", "php-fpm: pool www", K::PhpFpm),
            ("ruby", "puma 6.4.2 (tcp://0.0.0.0:3000) [app]", K::Puma),
            ("ruby", "puma: cluster worker 0: 1234 [app]", K::Puma),
            (
                "ruby",
                "/usr/local/bin/ruby /usr/local/bin/bundle exec puma -C config/puma.rb",
                K::Puma,
            ),
            (
                "ruby",
                "unicorn master -c config/unicorn.rb -E production",
                K::Unicorn,
            ),
            ("ruby", "ruby bin/rails server", K::Ruby),
            (
                "java",
                "java -jar /opt/app/app.jar --server.port=8080",
                K::Java,
            ),
            (
                "java",
                "/usr/lib/jvm/java-17-openjdk-amd64/bin/java -Xmx512m -jar app.jar",
                K::Java,
            ),
            ("python3", "python3 app.py", K::Python),
            (
                "python3",
                "python3 manage.py runserver 0.0.0.0:8000",
                K::Python,
            ),
            ("php8.2", "php -S 127.0.0.1:8080 -t public", K::Php),
            ("php", "php artisan serve", K::Php),
            ("nginx", "nginx: worker process", K::Nginx),
            ("apache2", "/usr/sbin/apache2 -k start", K::Apache),
            ("httpd", "/usr/sbin/httpd -DFOREGROUND", K::Apache),
            ("PassengerAgent", "Passenger core", K::Passenger),
            (
                "redis-server",
                "/usr/bin/redis-server 127.0.0.1:6379",
                K::Other,
            ),
            ("sshd", "", K::Other),
        ];
        for (process, cmdline, want) in cases {
            assert_eq!(
                kind_of(process, &args(cmdline)),
                *want,
                "{process} / {cmdline}"
            );
        }
        // Only comm is known (unreadable command line).
        assert_eq!(kind_of("php-fpm8.2", &[]), K::PhpFpm);
        assert_eq!(kind_of("gunicorn", &[]), K::Gunicorn);
        assert_eq!(kind_of("bash", &[]), K::Other);
        assert_eq!(K::Uwsgi.name(), "uWSGI");
        assert_eq!(K::PhpFpm.name(), "php-fpm");
    }

    #[test]
    fn args_after_the_server_program() {
        let cmd = args("/usr/bin/python3 -m gunicorn app:app -t 60");
        assert_eq!(args_after(&cmd, &["gunicorn"]), &args("app:app -t 60")[..]);
        let cmd = args("/usr/bin/python3 /venv/bin/gunicorn -w 4 app:app");
        assert_eq!(args_after(&cmd, &["gunicorn"]), &args("-w 4 app:app")[..]);
        let cmd = args("gunicorn: master [app:app]");
        assert_eq!(
            args_after(&cmd, &["gunicorn"]),
            &args("master [app:app]")[..]
        );
        assert!(args_after(&[], &["gunicorn"]).is_empty());
    }
}
