//! The `nginx -T` splitter against real `nginx -T` output (captured into fixtures by
//! nginx 1.22.1), and rebuilding the same tree from a dump as from the files themselves.
//!
//! `small-nginx-T.txt` is `nginx -T -c /tmp/fix502-small/nginx.conf` over a copy of
//! `fixtures/config/small`; `debian-nginx-T.txt` is `nginx -T` over
//! `fixtures/config/debian/etc/nginx` bind-mounted on `/etc/nginx`.

use std::path::{Path, PathBuf};

use fix502_nginx::config::{Config, FsSource, Source};
use fix502_nginx::dump::{DumpSource, DumpedFile, split_dump};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config")
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixtures().join(name)).expect("fixture")
}

/// Serves files under `to` as if they were under `from`, so that a fixture tree can stand
/// in for the directory nginx dumped.
struct Remap {
    from: PathBuf,
    to: PathBuf,
}

impl Remap {
    fn map(&self, path: &Path) -> PathBuf {
        match path.strip_prefix(&self.from) {
            Ok(rest) => self.to.join(rest),
            Err(_) => path.to_path_buf(),
        }
    }
}

impl Source for Remap {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        FsSource.read(&self.map(path))
    }

    fn glob(&self, pattern: &Path) -> std::io::Result<Vec<PathBuf>> {
        let found = FsSource.glob(&self.map(pattern))?;
        Ok(found
            .into_iter()
            .map(|p| match p.strip_prefix(&self.to) {
                Ok(rest) => self.from.join(rest),
                Err(_) => p,
            })
            .collect())
    }
}

const SMALL_ROOT: &str = "/tmp/fix502-small";
const SMALL_FILES: [&str; 7] = [
    "nginx.conf",
    "conf.d/A.conf",
    "conf.d/a.conf",
    "snippets/nested.inc",
    "snippets/empty.inc",
    "conf.d/b.conf",
    "snippets/common.inc",
];

#[test]
fn splits_real_output_into_the_exact_file_contents() {
    let files = split_dump(&fixture("small-nginx-T.txt"));
    let paths: Vec<PathBuf> = files.iter().map(|f| f.path.clone()).collect();
    let expected: Vec<PathBuf> = SMALL_FILES
        .iter()
        .map(|f| Path::new(SMALL_ROOT).join(f))
        .collect();
    assert_eq!(paths, expected);
    // Byte-for-byte the files on disk: including b.conf, which has no final newline, and
    // the empty file.
    for (file, rel) in files.iter().zip(SMALL_FILES) {
        let on_disk = fixture(&format!("small/{rel}"));
        assert_eq!(file.content, on_disk, "{rel}");
    }
    assert_eq!(files[4].content, "");
    assert!(!files[5].content.ends_with('\n'));
}

#[test]
fn dump_captured_with_stderr_drops_nginx_status_lines() {
    let mut text = String::from("nginx: [warn] something before the dump\n");
    text.push_str(&fixture("small-nginx-T.txt"));
    text.push_str("nginx: the configuration file /tmp/fix502-small/nginx.conf syntax is ok\n");
    text.push_str("nginx: configuration file /tmp/fix502-small/nginx.conf test is successful\n");
    let files = split_dump(&text);
    assert_eq!(files, split_dump(&fixture("small-nginx-T.txt")));
    assert_eq!(files.len(), 7);
    assert_eq!(files[6].content, "add_header X-Common \"1\";\n");
}

#[test]
fn dump_converted_to_crlf() {
    let text = fixture("small-nginx-T.txt").replace('\n', "\r\n");
    let files = split_dump(&text);
    assert_eq!(files.len(), 7);
    assert_eq!(files[0].path, Path::new("/tmp/fix502-small/nginx.conf"));
    assert_eq!(files[6].content, "add_header X-Common \"1\";\r\n");
    assert_eq!(files[4].content, "");
}

#[test]
fn text_without_headers_gives_nothing() {
    assert!(split_dump("").is_empty());
    assert!(split_dump("user x;\n# configuration file :\n").is_empty());
    let source = DumpSource::from_dump("garbage");
    assert_eq!(source.main_file(), None);
}

#[test]
fn dump_source_reads_and_globs_dumped_paths() {
    let source = DumpSource::from_dump(&fixture("small-nginx-T.txt"));
    assert_eq!(
        source.main_file(),
        Some(Path::new("/tmp/fix502-small/nginx.conf"))
    );
    assert_eq!(source.files().len(), 7);
    let read = source
        .read(Path::new("/tmp/fix502-small/snippets/common.inc"))
        .expect("read");
    assert_eq!(read, "add_header X-Common \"1\";\n");
    // Paths compare by component, so a redundant "./" still finds the file.
    assert!(
        source
            .read(Path::new("/tmp/fix502-small/./snippets/empty.inc"))
            .is_ok()
    );
    let missing = source
        .read(Path::new("/tmp/fix502-small/nope.conf"))
        .expect_err("missing");
    assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    let globbed = source
        .glob(Path::new("/tmp/fix502-small/conf.d/*.conf"))
        .expect("glob");
    assert_eq!(
        globbed,
        ["A.conf", "a.conf", "b.conf"].map(|f| Path::new("/tmp/fix502-small/conf.d").join(f))
    );
    assert!(
        source
            .glob(Path::new("/tmp/fix502-small/*.conf"))
            .expect("glob")
            .len()
            == 1
    );
    assert!(source.glob(Path::new("/tmp/[")).is_err());
}

#[test]
fn dump_source_from_files_keeps_the_first_duplicate() {
    let source = DumpSource::from_files(vec![
        DumpedFile {
            path: "/a".into(),
            content: "first".into(),
        },
        DumpedFile {
            path: "/a".into(),
            content: "second".into(),
        },
    ]);
    assert_eq!(source.read(Path::new("/a")).expect("read"), "first");
}

#[test]
fn small_tree_from_dump_equals_tree_from_files() {
    let source = DumpSource::from_dump(&fixture("small-nginx-T.txt"));
    let main = source.main_file().expect("main").to_path_buf();
    let from_dump = Config::load_from(&main, &source).expect("load dump");
    assert!(from_dump.errors.is_empty(), "{:?}", from_dump.errors);

    let remap = Remap {
        from: SMALL_ROOT.into(),
        to: fixtures().join("small"),
    };
    let from_files = Config::load_from(&main, &remap).expect("load files");
    assert!(from_files.errors.is_empty(), "{:?}", from_files.errors);

    assert_eq!(from_dump.files, from_files.files);
    assert_eq!(from_dump.directives, from_files.directives);
    let dumped: Vec<PathBuf> = source.files().iter().map(|f| f.path.clone()).collect();
    assert_eq!(
        from_dump.files, dumped,
        "same files in the same order as nginx"
    );
}

#[test]
fn debian_dump_is_split_in_nginx_order() {
    let files = split_dump(&fixture("debian-nginx-T.txt"));
    let paths: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
    assert_eq!(
        paths,
        [
            "/etc/nginx/nginx.conf",
            "/etc/nginx/modules-enabled/50-mod-http-echo.conf",
            "/etc/nginx/mime.types",
            "/etc/nginx/conf.d/app.conf",
            "/etc/nginx/proxy_params",
            "/etc/nginx/sites-enabled/default",
            "/etc/nginx/snippets/fastcgi-php.conf",
            "/etc/nginx/fastcgi.conf",
        ]
    );
    for file in &files {
        let rel = file
            .path
            .strip_prefix("/etc/nginx")
            .expect("under /etc/nginx");
        let on_disk = fixture(&format!("debian/etc/nginx/{}", rel.display()));
        assert_eq!(file.content, on_disk, "{}", file.path.display());
    }
}

#[test]
fn debian_tree_from_dump_equals_tree_from_files() {
    let source = DumpSource::from_dump(&fixture("debian-nginx-T.txt"));
    let main = Path::new("/etc/nginx/nginx.conf");
    let from_dump = Config::load_from(main, &source).expect("load dump");
    assert!(from_dump.errors.is_empty(), "{:?}", from_dump.errors);
    let remap = Remap {
        from: "/etc/nginx".into(),
        to: fixtures().join("debian/etc/nginx"),
    };
    let from_files = Config::load_from(main, &remap).expect("load files");
    assert!(from_files.errors.is_empty(), "{:?}", from_files.errors);
    assert_eq!(from_dump.files, from_files.files);
    assert_eq!(from_dump.directives, from_files.directives);
    assert_eq!(from_dump.files.len(), 8);
}
