//! What the benchmark tools share: for the log generators, a seeded random number generator
//! that gives the same log on every machine and their command line (`OUT [--size S]
//! [--days D] [--seed N] [--mix M] [--end TIME]`); for the upstream benchmarks, loopback
//! upstreams ([`serve`]).

pub mod serve;

use std::process::ExitCode;

use jiff::civil::DateTime;

/// splitmix64: small, fast, good enough for test data, identical on every platform.
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// One of `items`.
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let i = self.below(items.len() as u64) as usize;
        items.get(i).copied().unwrap_or_default()
    }
}

/// A generator's command line.
pub struct GenArgs {
    /// The file to write.
    pub out: String,
    /// About how many bytes to write.
    pub size: u64,
    /// How many days the log spans.
    pub days: u64,
    /// The seed of the [`Rng`].
    pub seed: u64,
    /// The time of the last line.
    pub end: DateTime,
    /// What kind of day the log is of.
    pub mix: Mix,
}

/// What kind of day a generated log is of (`--mix`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// A quiet day: mostly noise, a few upstream failures.
    Quiet,
    /// An incident: a large share of upstream failures of every family, long request and
    /// upstream fields, many distinct upstreams and URLs.
    Incident,
}

/// `512`, `64K`, `100M`, `1G`.
pub fn parse_size(s: &str) -> Option<u64> {
    let (digits, unit) = match s.char_indices().last()? {
        (i, 'K' | 'k') => (s.get(..i)?, 1 << 10),
        (i, 'M' | 'm') => (s.get(..i)?, 1 << 20),
        (i, 'G' | 'g') => (s.get(..i)?, 1 << 30),
        _ => (s, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(unit)
}

/// Parses `OUT [--size BYTES[K|M|G]] [--days D] [--seed S] [--mix quiet|incident]
/// [--end "YYYY/MM/DD HH:MM:SS"]`
/// for the generator called `name`.
pub fn parse_gen_args(name: &str) -> Result<GenArgs, String> {
    let mut args = std::env::args().skip(1);
    let mut parsed = GenArgs {
        out: String::new(),
        size: 1 << 30,
        days: 7,
        seed: 502,
        end: DateTime::constant(2026, 11, 24, 12, 0, 0, 0),
        mix: Mix::Quiet,
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--size" => parsed.size = parse_size(&value()?).ok_or("bad --size")?,
            "--days" => parsed.days = value()?.parse().map_err(|_| "bad --days")?,
            "--seed" => parsed.seed = value()?.parse().map_err(|_| "bad --seed")?,
            "--mix" => {
                parsed.mix = match value()?.as_str() {
                    "quiet" => Mix::Quiet,
                    "incident" => Mix::Incident,
                    other => return Err(format!("bad --mix {other}: quiet or incident")),
                }
            }
            "--end" => {
                parsed.end = DateTime::strptime("%Y/%m/%d %H:%M:%S", value()?)
                    .map_err(|e| format!("bad --end: {e}"))?;
            }
            _ if parsed.out.is_empty() && !arg.starts_with('-') => parsed.out = arg,
            _ => return Err(format!("unexpected argument {arg}")),
        }
    }
    if parsed.out.is_empty() {
        return Err(format!(
            "usage: {name} OUT [--size BYTES[K|M|G]] [--days D] [--seed S] [--mix quiet|incident] [--end \"YYYY/MM/DD HH:MM:SS\"]"
        ));
    }
    Ok(parsed)
}

/// The `main` of a generator called `name`: parses its command line, runs `generate` (which
/// returns how many lines it wrote), and says what happened on stderr.
pub fn run_generator(name: &str, generate: fn(&GenArgs) -> std::io::Result<u64>) -> ExitCode {
    let args = match parse_gen_args(name) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    match generate(&args) {
        Ok(lines) => {
            eprintln!("{name}: wrote {lines} lines to {}", args.out);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{name}: {}: {e}", args.out);
            ExitCode::FAILURE
        }
    }
}
