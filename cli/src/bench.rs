//! `leasehold bench frame-timing`: the real display path under synthetic render work,
//! Leasehold's late-commit frame loop (the runtime's own: `frame_loop::run_with` on the
//! KMS target, the compositor with nothing to compose, the render load a synthetic GPU's
//! fences) against a FIFO-swapchain baseline, same run.

use anyhow::{Context, bail};
use clap::Args;
use leasehold_compositor::kms::discovery::{ModeRequest, period_ns};
use leasehold_compositor::kms::{DirectLease, FdLease, LeaseSource, WaylandLease, X11Lease};
use leasehold_compositor::pacing::PacerConfig;
use leasehold_compositor::present::{self, FrameRecord, RenderModel, Summary};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct FrameTimingArgs {
    /// Frames per presenter.
    #[arg(long, default_value_t = 2000)]
    frames: u64,
    /// Synthetic render time per frame, ms.
    #[arg(long, default_value_t = 3.0)]
    render_ms: f64,
    /// Uniform jitter added to the render time, ± ms.
    #[arg(long)]
    jitter_ms: Option<f64>,
    /// Every N-th frame is a spike of --spike-ms.
    #[arg(long, requires = "spike_ms")]
    spike_every: Option<u64>,
    #[arg(long, requires = "spike_every")]
    spike_ms: Option<f64>,
    /// Display mode WxH@Hz (default: keep the lessor's, else the headset's preferred).
    #[arg(long)]
    mode: Option<ModeRequest>,
    /// Use this connector as the headset (e.g. DP-2) instead of discovering it.
    #[arg(long, conflicts_with = "lease_fd")]
    connector: Option<String>,
    /// Use an inherited DRM lease fd instead of leasing the headset ourselves.
    #[arg(long)]
    lease_fd: Option<i32>,
    /// Ask the Wayland compositor we run under for the headset (wp_drm_lease_device_v1).
    #[arg(long, conflicts_with = "lease_fd")]
    wayland: bool,
    /// Ask the X server we run under for the headset (RandR 1.6 CreateLease).
    #[arg(long, conflicts_with_all = ["lease_fd", "wayland"])]
    x11: bool,
    /// Swapchain images of the FIFO baseline.
    #[arg(long, default_value_t = 3)]
    fifo_images: usize,
    /// Run only one presenter.
    #[arg(long, value_parser = ["late", "fifo"])]
    only: Option<String>,
    /// Where the CSV and plot go.
    #[arg(long, default_value = "leasehold-bench")]
    out: PathBuf,
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn render_model(a: &FrameTimingArgs) -> anyhow::Result<RenderModel> {
    let ns = |v: f64, what: &str| -> anyhow::Result<u64> {
        if !(0.0..=1000.0).contains(&v) {
            bail!("{what} must be between 0 and 1000 ms");
        }
        Ok((v * 1e6) as u64)
    };
    let base = ns(a.render_ms, "--render-ms")?;
    Ok(match (a.jitter_ms, a.spike_every, a.spike_ms) {
        (Some(j), _, _) => RenderModel::Jittered {
            ns: base,
            jitter_ns: ns(j, "--jitter-ms")?,
        },
        (None, Some(every), Some(s)) => RenderModel::Spikes {
            ns: base,
            every,
            spike_ns: ns(s, "--spike-ms")?,
        },
        _ => RenderModel::Fixed { ns: base },
    })
}

pub fn frame_timing(a: FrameTimingArgs) -> anyhow::Result<()> {
    if a.frames == 0 {
        bail!("--frames must be at least 1");
    }
    if a.fifo_images < 2 {
        bail!("--fifo-images must be at least 2");
    }
    let render = render_model(&a)?;
    let connector = a.connector.clone();
    let mut source: Box<dyn LeaseSource> = match (a.lease_fd, a.wayland, a.x11) {
        (Some(fd), _, _) => Box::new(FdLease::from_inherited(fd)?),
        (None, true, _) => Box::new(WaylandLease {
            socket: None,
            connector,
        }),
        (None, false, true) => Box::new(X11Lease {
            display: None,
            connector,
        }),
        (None, false, false) => Box::new(DirectLease { connector }),
    };
    let (lease, headset) = source
        .acquire()
        .with_context(|| format!("cannot lease the headset ({})", source.describe()))?;
    let headset = headset.context("the lease's connector is not visible")?;
    let lessee = lease.card();
    let lit = leasehold_compositor::kms::bringup::bring_up(lessee, &lease, &headset, a.mode, 3)?;
    let leasehold_compositor::kms::bringup::Lit {
        output, ring, mode, ..
    } = lit;
    let size = mode.size();
    let period = period_ns(&mode);
    let mut cfg = PacerConfig::for_period(period);
    if let Some(p) = headset.profile {
        cfg.scanout_to_photon_ns = u64::from(p.display.scanout_to_photon_us) * 1000;
    }
    let rt = present::request_realtime_priority();
    let (w, h) = size;
    println!(
        "leasehold frame-timing: {} on {} ({}), {w}x{h} at {:.3} Hz, {} frames per presenter, render {render:?}",
        headset.connector.name,
        headset.card.display(),
        headset
            .profile
            .map(|p| p.name.as_str())
            .unwrap_or("unknown headset"),
        1e9 / period as f64,
        a.frames
    );
    println!(
        "  scanout: {:?} buffers, stride {}",
        ring.allocator(),
        ring.buffer(0).stride
    );
    if !rt {
        println!("  (presenter at normal priority: no CAP_SYS_NICE)");
    }

    // Measuring takes a minute: find out now, not after it, that the results cannot be
    // written.
    check_out_dir(&a.out)?;

    let mut runs: Vec<(&str, Vec<FrameRecord>)> = Vec::new();
    let (mut output, mut ring) = (output, ring);
    let plan: Vec<&str> = ["late-commit", "fifo"]
        .into_iter()
        .filter(|n| a.only.as_deref().is_none_or(|o| n.starts_with(o)))
        .collect();
    for name in plan {
        eprint!("  running {name} … ");
        let t0 = std::time::Instant::now();
        let run = if name == "late-commit" {
            // The runtime's own frame loop.
            let (run, o, r) = leasehold_compositor::frame_loop::run_on_output(
                lessee, output, ring, period, cfg, render, a.frames, None,
            )
            .with_context(|| format!("the {name} presenter failed"))?;
            (output, ring) = (o, r);
            run
        } else {
            present::fifo(&output, &mut ring, period, a.fifo_images, render, a.frames)
                .with_context(|| format!("the {name} presenter failed"))?
        };
        if run.stop == present::Stop::LeaseLost {
            bail!(
                "the lease on {} was lost after {} frames of {name} (revoked, or its lessor went away): presenter stopped",
                headset.connector.name,
                run.records.len()
            );
        }
        let recs = run.records;
        eprintln!("{:.1} s", t0.elapsed().as_secs_f64());
        runs.push((name, recs));
    }

    let sums: Vec<(&str, Summary)> = runs.iter().map(|(n, r)| (*n, Summary::of(r))).collect();
    println!();
    print!("  {:<28}", "");
    for (n, _) in &sums {
        print!("{n:>14}");
    }
    println!();
    let row = |label: &str, f: &dyn Fn(&Summary) -> String| {
        print!("  {label:<28}");
        for (_, s) in &sums {
            print!("{:>14}", f(s));
        }
        println!();
    };
    row("hit rate", &|s| format!("{:.2} %", 100.0 * s.hit_rate));
    row("missed vblanks (frames)", &|s| s.misses.to_string());
    row("retargeted before commit", &|s| s.retargeted.to_string());
    row("wake-to-scanout median", &|s| {
        format!("{:.2} ms", ms(s.wake_to_scanout_median_ns))
    });
    row("wake-to-scanout p99", &|s| {
        format!("{:.2} ms", ms(s.wake_to_scanout_p99_ns))
    });
    row("commit-to-vblank median", &|s| {
        format!("{:.2} ms", ms(s.commit_to_vblank_median_ns))
    });
    row("commit-to-vblank p99", &|s| {
        format!("{:.2} ms", ms(s.commit_to_vblank_p99_ns))
    });
    if let [(_, late), (_, fifo)] = sums.as_slice() {
        println!(
            "\n  late-commit median wake-to-scanout is {:.2}x the baseline's",
            late.wake_to_scanout_median_ns as f64 / fifo.wake_to_scanout_median_ns.max(1) as f64
        );
    }
    // The table is out; a file that cannot be written now (the disk filled, the folder
    // went away) is reported after it, and fails the command.
    let csv = a.out.join("frame-timing.csv");
    let written = write_csv(&csv, &runs);
    match &written {
        Ok(()) => println!("  per-frame CSV: {}", csv.display()),
        Err(_) => println!("  per-frame CSV: not written (the error follows)"),
    }
    let png = a.out.join("frame-timing.png");
    let title = format!(
        "{} {w}x{h} @ {:.1} Hz, render {:.1} ms: red = missed vblank (lab figures are TCG, not real scanout)",
        headset.connector.name,
        1e9 / period as f64,
        a.render_ms
    );
    match crate::plot::frame_timing(&png, &title, &runs) {
        Ok(()) => println!("  plot: {}", png.display()),
        Err(e) => println!("  plot skipped: {e:#}"),
    }
    written.context("the measurements above are not saved")
}

/// Creates the output folder and proves it writable with a scratch file.
fn check_out_dir(dir: &Path) -> anyhow::Result<()> {
    let hint = "choose another with --out";
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the output folder {} ({hint})", dir.display()))?;
    let probe = dir.join(format!(".leasehold-write-test-{}", std::process::id()));
    let wrote = std::fs::write(&probe, b"");
    let _ = std::fs::remove_file(&probe);
    wrote.with_context(|| {
        format!(
            "cannot write to the output folder {} ({hint})",
            dir.display()
        )
    })
}

fn write_csv(csv: &Path, runs: &[(&str, Vec<FrameRecord>)]) -> anyhow::Result<()> {
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(csv).with_context(|| format!("cannot write {}", csv.display()))?,
    );
    writeln!(f, "presenter,{}", FrameRecord::CSV_HEADER)?;
    for (name, recs) in runs {
        for r in recs {
            writeln!(f, "{name},{}", r.csv_row())?;
        }
    }
    f.flush()
        .with_context(|| format!("cannot write {}", csv.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("leasehold-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn the_output_folder_is_created_and_left_clean() {
        let d = scratch("ok");
        let out = d.join("a/b");
        check_out_dir(&out).unwrap();
        assert!(out.is_dir());
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "no probe left");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_unusable_output_folder_is_named_before_measuring() {
        // A file where the folder should be: refused even for root, who may write
        // into a read-only folder.
        let d = scratch("file");
        std::fs::create_dir_all(&d).unwrap();
        let file = d.join("not-a-folder");
        std::fs::write(&file, b"x").unwrap();
        for out in [file.clone(), file.join("sub")] {
            let e = format!("{:#}", check_out_dir(&out).unwrap_err());
            assert!(
                e.contains(&format!("output folder {}", out.display())) && e.contains("--out"),
                "{e}"
            );
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_csv_that_cannot_be_written_is_an_error_naming_it() {
        let d = scratch("csv");
        let csv = d.join("missing-folder/frame-timing.csv");
        let e = format!("{:#}", write_csv(&csv, &[]).unwrap_err());
        assert!(e.contains(&csv.display().to_string()), "{e}");
        std::fs::create_dir_all(&d).unwrap();
        let csv = d.join("frame-timing.csv");
        write_csv(&csv, &[("late-commit", Vec::new())]).unwrap();
        let text = std::fs::read_to_string(&csv).unwrap();
        assert_eq!(text, format!("presenter,{}\n", FrameRecord::CSV_HEADER));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
