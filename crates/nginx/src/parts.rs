//! Reading one file in parts on several threads, and folding the parts' results in file
//! order, so that the result is exactly that of one pass (the error-log scan and the
//! access-log reader use it).
//!
//! [`split_points`] cuts a byte range into parts of about [`PART`] bytes at line starts;
//! [`fold_in_order`] has [`threads`] threads scan the parts, each part read through a
//! [`FileRange`] (`pread`, so that threads share the file, and never mapped: a live log
//! truncated by `copytruncate` only ends the read early), and hands the results to one fold
//! in file order. A thread runs at most a few parts ahead of the fold, which bounds the
//! results waiting, and so memory. The fold may publish a hint for the parts scanned after
//! it (the error log's group keys once every group is taken).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// Threads for a file scan: one per core, at most [`MAX_THREADS`].
pub(crate) fn threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(MAX_THREADS)
}

/// Most threads a file scan uses.
const MAX_THREADS: usize = 4;

/// The size of the parts a file scan is cut into: small enough that the results waiting
/// to be folded stay small, large enough that a part's fold costs little beside its scan.
pub(crate) const PART: u64 = 2 * 1024 * 1024;

/// Most parts a file scan is cut into (larger files get larger parts).
const MAX_PARTS: u64 = 4096;

/// How far past a split point [`split_points`] looks for a newline before it gives up on
/// splitting there.
const SPLIT_SEARCH: u64 = 1024 * 1024;

/// Scans `parts` of a file with `threads` threads (`scan` gets the part and the fold's hint
/// if it has published one) and folds the results in file order on this thread (`fold`
/// gets each result with its part, and returns a hint to publish once it has one).
///
/// # Errors
///
/// The first error of a scan or of the fold, in file order; a scan thread that panicked is
/// an error too.
pub(crate) fn fold_in_order<S, H>(
    parts: &[(u64, u64)],
    threads: usize,
    scan: impl Fn((u64, u64), Option<Arc<H>>) -> io::Result<S> + Sync,
    mut fold: impl FnMut(S, (u64, u64)) -> io::Result<Option<H>>,
) -> io::Result<()>
where
    S: Send,
    H: Send + Sync,
{
    let pipeline = Pipeline::new(threads * 2);
    std::thread::scope(|scope| {
        let (results, received) = std::sync::mpsc::channel();
        let mut handles = Vec::with_capacity(threads);
        for _ in 0..threads.max(1) {
            let results = results.clone();
            let (pipeline, scan) = (&pipeline, &scan);
            handles.push(scope.spawn(move || {
                // A panic here stops the other threads: otherwise they would wait for the
                // fold to pass a part that never comes, and the fold for their results.
                let _stop = pipeline.stop_on_drop(Stopping::OnPanic);
                // One iteration per part this thread takes; ends when none is left.
                while let Some((index, hint)) = pipeline.take(parts.len()) {
                    let Some(&part) = parts.get(index) else { break };
                    if results.send((index, scan(part, hint))).is_err() {
                        break;
                    }
                }
            }));
        }
        drop(results);
        // Stops the threads however this fold ends (an error, a panic).
        let _stop = pipeline.stop_on_drop(Stopping::Always);
        let mut waiting = std::collections::BTreeMap::new();
        let mut next = 0;
        // One iteration per part scanned; ends when every thread has finished.
        for (index, result) in received {
            waiting.insert(index, result);
            while let Some(result) = waiting.remove(&next) {
                let Some(&part) = parts.get(next) else { break };
                let hint = fold(result?, part)?;
                next += 1;
                pipeline.folded(next, hint);
            }
        }
        for handle in handles {
            handle
                .join()
                .map_err(|_| io::Error::other("a log-reading thread panicked"))?;
        }
        if next < parts.len() {
            return Err(io::Error::other("a log read ended before its last part"));
        }
        Ok(())
    })
}

/// How the threads of [`fold_in_order`] share out the parts: a thread takes the next part
/// unless it is `window` parts ahead of the fold, with the fold's hint once there is one.
struct Pipeline<H> {
    state: Mutex<PipelineState<H>>,
    changed: Condvar,
    window: usize,
}

struct PipelineState<H> {
    /// The next part to take.
    next: usize,
    /// Parts folded so far.
    folded: usize,
    /// The fold's hint, once it has published one.
    hint: Option<Arc<H>>,
    /// The fold has ended (done, failed or panicked): take no more parts.
    stop: bool,
}

impl<H> Pipeline<H> {
    fn new(window: usize) -> Self {
        Self {
            state: Mutex::new(PipelineState {
                next: 0,
                folded: 0,
                hint: None,
                stop: false,
            }),
            changed: Condvar::new(),
            window: window.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PipelineState<H>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next part of `parts` to scan, with the hint if there is one; `None` when all
    /// are taken or the fold has stopped. Waits while the window is full.
    fn take(&self, parts: usize) -> Option<(usize, Option<Arc<H>>)> {
        let mut state = self.lock();
        // Each wait ends with a part folded or the fold stopped (both notify).
        while !state.stop && state.next < parts && state.next >= state.folded + self.window {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.stop || state.next >= parts {
            return None;
        }
        state.next += 1;
        Some((state.next - 1, state.hint.clone()))
    }

    /// Records that `folded` parts are folded, and the fold's hint if it gave one (the
    /// first one stays).
    fn folded(&self, folded: usize, hint: Option<H>) {
        let mut state = self.lock();
        state.folded = folded;
        if state.hint.is_none() {
            state.hint = hint.map(Arc::new);
        }
        drop(state);
        self.changed.notify_all();
    }

    /// A guard that stops the threads when dropped, or only when dropped by a panic.
    fn stop_on_drop(&self, when: Stopping) -> impl Drop + '_ {
        struct Stop<'a, H>(&'a Pipeline<H>, Stopping);
        impl<H> Drop for Stop<'_, H> {
            fn drop(&mut self) {
                if self.1 == Stopping::Always || std::thread::panicking() {
                    self.0.lock().stop = true;
                    self.0.changed.notify_all();
                }
            }
        }
        Stop(self, when)
    }
}

/// When a [`Pipeline::stop_on_drop`] guard stops the threads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stopping {
    Always,
    OnPanic,
}

/// Splits `from..to` of `file` into ranges of about `part` bytes (at most [`MAX_PARTS`]),
/// each starting at a line start (right after a `\n`).
pub(crate) fn split_points(
    file: &File,
    from: u64,
    to: u64,
    part: u64,
) -> io::Result<Vec<(u64, u64)>> {
    let len = to.saturating_sub(from);
    let wanted = (len / part.max(1)).clamp(1, MAX_PARTS);
    let mut bounds = vec![from];
    let mut chunk = vec![0u8; 8 * 1024];
    // Where the last search ended: a line longer than a part is searched once, not by
    // every split point inside it.
    let mut searched = from;
    for i in 1..wanted {
        let target = from + len / wanted * i;
        let mut pos = target.max(searched);
        let limit = to.min(pos.saturating_add(SPLIT_SEARCH));
        // Each iteration reads a chunk further; bounded by SPLIT_SEARCH.
        while pos < limit {
            let want = usize::try_from(limit - pos).map_or(chunk.len(), |n| n.min(chunk.len()));
            let buf = chunk.get_mut(..want).unwrap_or_default();
            let got = read_fully_at(file, buf, pos)?;
            if got == 0 {
                break;
            }
            if let Some(at) = buf.get(..got).and_then(|b| memchr::memchr(b'\n', b)) {
                pos += at as u64 + 1;
                bounds.push(pos);
                break;
            }
            pos += got as u64;
        }
        searched = pos;
    }
    bounds.push(to);
    bounds.dedup();
    Ok(bounds
        .windows(2)
        .filter_map(|w| match *w {
            [a, b] if a < b => Some((a, b)),
            _ => None,
        })
        .collect())
}

/// Reads into `buf` at `offset` until it is full or the file ends; returns the bytes read.
pub(crate) fn read_fully_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut got = 0;
    // Each iteration reads at least one byte, or returns.
    while let Some(rest) = buf.get_mut(got..).filter(|r| !r.is_empty()) {
        match file.read_at(rest, offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// A byte range of a file as a reader, read with `pread` so that threads share the file.
pub(crate) struct FileRange<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl<'a> FileRange<'a> {
    /// Bytes `from..to` of `file`.
    pub(crate) fn new(file: &'a File, from: u64, to: u64) -> Self {
        Self {
            file,
            pos: from,
            end: to,
        }
    }
}

impl Read for FileRange<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end.saturating_sub(self.pos)).unwrap_or(usize::MAX);
        let Some(buf) = buf.get_mut(..left.min(buf.len())).filter(|b| !b.is_empty()) else {
            return Ok(0);
        };
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parts `0..n` of one byte each.
    fn parts(n: u64) -> Vec<(u64, u64)> {
        (0..n).map(|i| (i, i + 1)).collect()
    }

    #[test]
    fn results_are_folded_in_file_order_with_the_hint_after_it_is_published() {
        let parts = parts(200);
        let mut order = Vec::new();
        let hinted = std::sync::atomic::AtomicUsize::new(0);
        fold_in_order(
            &parts,
            3,
            |(from, _), hint: Option<Arc<u64>>| {
                if hint.is_some() {
                    hinted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(from)
            },
            |from, _| {
                order.push(from);
                Ok((from == 10).then_some(10))
            },
        )
        .unwrap();
        assert_eq!(order, (0..200).collect::<Vec<_>>());
        // Parts taken after part 10 was folded see the hint: at least those past the
        // window (2 × 3 parts ahead of the fold).
        assert!(hinted.into_inner() >= 200 - 11 - 6);
    }

    #[test]
    fn a_scan_error_is_the_fold_error() {
        let result = fold_in_order(
            &parts(100),
            2,
            |(from, _), _: Option<Arc<()>>| {
                if from == 30 {
                    Err(io::Error::other("bad part"))
                } else {
                    Ok(from)
                }
            },
            |_, _| Ok(None),
        );
        assert_eq!(result.unwrap_err().to_string(), "bad part");
    }

    #[test]
    fn a_panicking_scan_is_an_error_not_a_hang() {
        let result = fold_in_order(
            &parts(100),
            2,
            |(from, _), _: Option<Arc<()>>| {
                assert_ne!(from, 3, "a scan that panics (expected by this test)");
                Ok(from)
            },
            |_, _| Ok(None),
        );
        assert!(result.is_err());
    }
}
