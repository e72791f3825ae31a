//! Command-line options of app servers and the settings they give: one table of options a
//! server, parsed in every spelling (`--name value`, `--name=value`, `-n value`, `-nvalue`),
//! observations resolved in precedence order, documented defaults added, and an
//! environment variable such as `GUNICORN_CMD_ARGS` split into words.

use super::types::{Setting, SettingSource};

/// One option of an app server's command line.
#[derive(Debug, Clone, Copy)]
pub(super) struct Opt {
    /// The canonical setting name.
    pub(super) name: &'static str,
    /// Spellings on the command line (`-t`, `--timeout`); ini/config keys match the long
    /// ones without dashes.
    pub(super) flags: &'static [&'static str],
    /// Given several times, every occurrence counts (`--bind`).
    pub(super) multi: bool,
    /// The value may be left out (uWSGI's `--http-keepalive`).
    pub(super) optional_value: bool,
}

pub(super) const fn opt(name: &'static str, flags: &'static [&'static str]) -> Opt {
    Opt {
        name,
        flags,
        multi: false,
        optional_value: false,
    }
}

pub(super) const fn multi(name: &'static str, flags: &'static [&'static str]) -> Opt {
    Opt {
        name,
        flags,
        multi: true,
        optional_value: false,
    }
}

impl Opt {
    /// Whether a config-file key names this option (`buffer_size` or `buffer-size`).
    pub(super) fn has_key(&self, key: &str) -> bool {
        let key = key.replace('_', "-");
        self.name == key
            || self
                .flags
                .iter()
                .any(|f| f.strip_prefix("--") == Some(key.as_str()))
    }
}

/// Parses `args` against `opts`: `--name value`, `--name=value`, `-n value`, `-nvalue`.
/// Unknown options are skipped one word at a time. Returns the recognised settings in
/// order, and the positional words.
pub(super) fn parse_options(
    args: &[String],
    opts: &[Opt],
    source: &SettingSource,
) -> (Vec<Setting>, Vec<String>) {
    let mut settings = Vec::new();
    let mut positional = Vec::new();
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        i += 1;
        if arg == "--" {
            positional.extend(args.get(i..).unwrap_or_default().iter().cloned());
            break;
        }
        let (flag, inline) = if arg.starts_with("--") {
            match arg.split_once('=') {
                Some((flag, value)) => (flag, Some(value.to_owned())),
                None => (arg.as_str(), None),
            }
        } else if arg.starts_with('-') && arg.len() > 2 && arg.is_char_boundary(2) {
            let (flag, rest) = arg.split_at(2);
            (flag, Some(rest.to_owned()))
        } else if arg.starts_with('-') && arg.len() > 1 {
            (arg.as_str(), None)
        } else {
            positional.push(arg.clone());
            continue;
        };
        let Some(spec) = opts.iter().find(|o| o.flags.contains(&flag)) else {
            continue;
        };
        let value = match inline {
            Some(value) => value,
            None => match args.get(i) {
                Some(next) if !(spec.optional_value && next.starts_with('-')) => {
                    i += 1;
                    next.clone()
                }
                _ if spec.optional_value => "true".to_owned(),
                _ => continue,
            },
        };
        settings.push(Setting::new(spec.name, value, source.clone()));
    }
    (settings, positional)
}

/// Keeps the effective settings from observations in increasing precedence: the last one
/// of each name, or all of them for names in `multi`.
pub(super) fn resolve(observed: Vec<Setting>, multi: &[&str]) -> Vec<Setting> {
    let mut out: Vec<Setting> = Vec::new();
    for setting in observed {
        if !multi.contains(&setting.name.as_str())
            && let Some(slot) = out.iter_mut().find(|s| s.name == setting.name)
        {
            *slot = setting;
        } else {
            out.push(setting);
        }
    }
    out
}

/// Adds `name = value` as a [`SettingSource::Default`] when no setting has that name.
pub(super) fn with_default(settings: &mut Vec<Setting>, name: &str, value: &str) {
    if !settings.iter().any(|s| s.name == name) {
        settings.push(Setting::new(name, value, SettingSource::Default));
    }
}

pub(super) fn names_of(opts: &[Opt]) -> Vec<&'static str> {
    opts.iter().filter(|o| o.multi).map(|o| o.name).collect()
}

/// Splits a `GUNICORN_CMD_ARGS`-style string into words (whitespace, with single and
/// double quotes grouping).
pub(super) fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}
/// Removes one pair of matching surrounding quotes.
pub(super) fn unquote(value: &str) -> String {
    for q in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner.to_owned();
        }
    }
    value.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_words_with_quotes() {
        assert_eq!(
            split_words(" --timeout 90  --bind='unix:/run/a b.sock' \"x y\""),
            ["--timeout", "90", "--bind=unix:/run/a b.sock", "x y"]
        );
        assert!(split_words("   ").is_empty());
    }
}
