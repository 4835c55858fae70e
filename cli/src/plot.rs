//! PNG plots for benchmark results.

use anyhow::{Context, bail};
use leasehold_compositor::present::FrameRecord;
use plotters::prelude::*;
use std::path::Path;

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers a system sans-serif font for plot text, once.
fn ensure_font() -> anyhow::Result<()> {
    static FONT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    FONT.get_or_init(|| {
        let bytes = FONT_PATHS
            .iter()
            .find_map(|p| std::fs::read(p).ok())
            .ok_or_else(|| {
                format!(
                    "no DejaVu Sans font (install fonts-dejavu-core); looked in {}",
                    FONT_PATHS.join(", ")
                )
            })?;
        plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            Box::leak(bytes.into_boxed_slice()),
        )
        .map_err(|_| "DejaVu Sans could not be loaded".to_string())
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// Two panels: wake-to-scanout latency per frame for each presenter, and commit-to-vblank
/// margin per frame; missed frames marked in red.
pub fn frame_timing(
    path: &Path,
    title: &str,
    runs: &[(&str, Vec<FrameRecord>)],
) -> anyhow::Result<()> {
    if runs.iter().all(|(_, r)| r.is_empty()) {
        bail!("nothing to plot");
    }
    ensure_font()?;
    let root = BitMapBackend::new(path, (1400, 900)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let (top, bottom) = root.split_vertically(450);
    let frames = runs.iter().map(|(_, r)| r.len()).max().unwrap_or(1) as f64;
    let colors = [RGBColor(0x1f, 0x77, 0xb4), RGBColor(0x7f, 0x7f, 0x7f)];
    for (area, what, f) in [
        (
            &top,
            "wake-to-scanout (ms)",
            FrameRecord::wake_to_scanout_ns as fn(&FrameRecord) -> u64,
        ),
        (
            &bottom,
            "commit-to-vblank (ms)",
            FrameRecord::commit_to_vblank_ns,
        ),
    ] {
        let ymax = runs
            .iter()
            .flat_map(|(_, r)| r.iter().map(|x| ms(f(x))))
            .fold(1.0f64, f64::max)
            * 1.1;
        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..frames, 0f64..ymax)?;
        chart
            .configure_mesh()
            .x_desc("frame")
            .y_desc(what)
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .draw()?;
        for ((name, recs), color) in runs.iter().zip(colors) {
            chart
                .draw_series(LineSeries::new(
                    recs.iter().map(|r| (r.frame as f64, ms(f(r)))),
                    color.stroke_width(1),
                ))?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                });
            chart.draw_series(
                recs.iter()
                    .filter(|r| !r.hit)
                    .map(|r| Circle::new((r.frame as f64, ms(f(r))), 3, RED.filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()?;
    }
    root.present()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(frame: u64, wake_to_scanout: u64, hit: bool) -> FrameRecord {
        FrameRecord {
            frame,
            target_sequence: frame,
            target_vblank_ns: 0,
            wake_ns: 0,
            commit_ns: wake_to_scanout / 2,
            fence_signal_ns: 0,
            flip_sequence: frame,
            flip_ns: wake_to_scanout,
            margin_ns: 0,
            hit,
            retargeted: false,
        }
    }

    #[test]
    fn writes_a_png_of_the_requested_size() {
        let dir = std::env::temp_dir().join(format!("leasehold-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.png");
        let late: Vec<_> = (0..300)
            .map(|i| rec(i, 5_000_000 + (i % 7) * 100_000, i != 100))
            .collect();
        let fifo: Vec<_> = (0..300).map(|i| rec(i, 16_000_000, true)).collect();
        frame_timing(&path, "test", &[("late-commit", late), ("fifo", fifo)]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR: width and height, big-endian, at bytes 16..24.
        assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 1400);
        assert_eq!(u32::from_be_bytes(bytes[20..24].try_into().unwrap()), 900);
        assert!(frame_timing(&path, "empty", &[("x", vec![])]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
