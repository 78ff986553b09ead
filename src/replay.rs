//! `flowmesh replay`: capture files through one shard, flow records out as JSON lines.

use crate::cli::ReplayArgs;
use crate::summary::{Progress, Summary};
use anyhow::{bail, Context, Result};
use flowmesh_core::capture::{CaptureError, CaptureReader};
use flowmesh_core::flow::FlowTableConfig;
use flowmesh_core::reassembly::ReassemblyConfig;
use flowmesh_core::shard::{Shard, ShardConfig};
use flowmesh_schemas::FlowRecord;
use memmap2::{Advice, Mmap, UncheckedAdvice};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A capture file mapped into memory and checked to be readable.
struct Input {
    path: PathBuf,
    map: Mmap,
}

/// Bytes of a mapping read before its pages are handed back to the kernel.
const RELEASE_CHUNK: usize = 16 << 20;

impl Input {
    /// Drops the pages of `[from, to)` (rounded inward to pages) from this process's
    /// resident set, so replaying a file of any size keeps memory bounded by the caps,
    /// not by the file. Returns the new release mark.
    fn release(&self, from: usize, to: usize) -> usize {
        const PAGE: usize = 4096;
        let start = from.next_multiple_of(PAGE);
        let end = to / PAGE * PAGE;
        if end > start {
            // SAFETY: MADV_DONTNEED on a private, read-only file mapping only discards
            // cached pages; a later access would re-read them from the file. Nothing
            // borrows these bytes any more: every frame before `to` has been processed
            // and flow records own their data.
            let _ = unsafe {
                self.map
                    .unchecked_advise_range(UncheckedAdvice::DontNeed, start, end - start)
            };
            return end;
        }
        from
    }
}

/// Opens and maps every file before any output, so a bad argument fails fast.
fn open_all(paths: &[PathBuf]) -> Result<Vec<Input>> {
    paths.iter().map(|p| open_one(p)).collect()
}

fn open_one(path: &Path) -> Result<Input> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_dir() {
        bail!(
            "{} is a directory; give capture files (pcap or pcapng)",
            path.display()
        );
    }
    if meta.len() == 0 {
        bail!("{} is empty: not a pcap or pcapng file", path.display());
    }
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: the mapping is read-only and private to this process. A file truncated
    // by another process while mapped would fault (SIGBUS); capture files being replayed
    // are not expected to shrink, which is the usual contract of pcap readers that map.
    let map =
        unsafe { Mmap::map(&file) }.with_context(|| format!("cannot map {}", path.display()))?;
    // Read-ahead helps; failure to advise only costs speed.
    let _ = map.advise(Advice::Sequential);
    CaptureReader::new(&map)
        .with_context(|| format!("{} is not a readable capture file", path.display()))?;
    Ok(Input {
        path: path.to_owned(),
        map,
    })
}

fn shard_config(args: &ReplayArgs) -> ShardConfig {
    ShardConfig {
        flows: FlowTableConfig {
            capacity: args.max_flows.max(1),
            ..FlowTableConfig::default()
        },
        reassembly: ReassemblyConfig {
            depth: args.depth,
            ..ReassemblyConfig::default()
        },
        reassembly_memcap: args.reassembly_memcap_mb.saturating_mul(1 << 20),
        fingerprints: args.fingerprints,
        ..ShardConfig::default()
    }
}

/// Runs `flowmesh replay`.
pub fn run(args: &ReplayArgs) -> Result<()> {
    let inputs = open_all(&args.files)?;
    let mut writer: Box<dyn Write> = if args.output == "-" {
        Box::new(BufWriter::with_capacity(1 << 16, io::stdout().lock()))
    } else {
        let f =
            File::create(&args.output).with_context(|| format!("cannot create {}", args.output))?;
        Box::new(BufWriter::with_capacity(1 << 16, f))
    };
    let started = Instant::now();
    let total_bytes: u64 = inputs.iter().map(|i| i.map.len() as u64).sum();
    let mut progress = Progress::new(!args.quiet, total_bytes);
    let mut shard = Shard::new(shard_config(args));
    let mut records = Vec::with_capacity(1024);
    let mut warnings = Vec::new();
    let mut done_bytes = 0u64;
    for input in &inputs {
        let mut reader = CaptureReader::new(&input.map)?;
        let mut n = 0u64;
        let mut released = 0usize;
        while let Some(item) = reader.next_frame() {
            match item {
                Ok(frame) => shard.process_frame(&frame, &mut records),
                Err(e) => {
                    warnings.push(cut_short_warning(&input.path, &e));
                    break;
                }
            }
            if !records.is_empty() {
                write_records(&mut writer, &mut records)?;
            }
            n += 1;
            if n.is_multiple_of(4096) {
                progress.tick(
                    &input.path,
                    done_bytes + reader.offset() as u64,
                    &shard.stats(),
                );
                if reader.offset() - released >= RELEASE_CHUNK {
                    released = input.release(released, reader.offset());
                }
            }
        }
        done_bytes += input.map.len() as u64;
    }
    shard.finish(&mut records);
    write_records(&mut writer, &mut records)?;
    writer.flush().context("cannot write the output")?;
    progress.clear();
    for w in &warnings {
        eprintln!("flowmesh: warning: {w}");
    }
    if !args.quiet {
        eprint!(
            "{}",
            Summary {
                files: inputs.len(),
                stats: &shard.stats(),
                elapsed: started.elapsed()
            }
        );
    }
    Ok(())
}

fn cut_short_warning(path: &Path, e: &CaptureError) -> String {
    format!("{}: {e}; kept the records read so far", path.display())
}

fn write_records(w: &mut dyn Write, records: &mut Vec<FlowRecord>) -> Result<()> {
    for r in records.drain(..) {
        serde_json::to_writer(&mut *w, &r).context("cannot write a record")?;
        w.write_all(b"\n").context("cannot write the output")?;
    }
    Ok(())
}
