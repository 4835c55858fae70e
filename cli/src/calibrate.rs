//! `leasehold calibrate imu|display`: measure the headset's IMU errors at rest, or set
//! display overrides; both write the per-headset calibration file the driver applies on
//! its next start.

use anyhow::{Context, Result, bail};
use glam::DVec3;
use leasehold_drivers::api::Hmd;
use leasehold_drivers::calibration::{
    self, Calibration, DisplayOverrides, Face, ImuCalibration, ImuGoal, ImuRun, ImuRunError,
};
use leasehold_drivers::motion::{GRAVITY, ImuSample};
use leasehold_drivers::vive::{self, CalibrationSource, ViveHmd, ViveOptions};
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct ImuArgs {
    /// Don't ask: start at once and save the result.
    #[arg(long)]
    yes: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Only the gyro bias: keep the headset still on one side (about 5 s).
    #[arg(long)]
    gyro_only: bool,
}

#[derive(clap::Args, Debug)]
pub struct DisplayArgs {
    /// Don't ask before saving.
    #[arg(long)]
    yes: bool,
    /// Distance between your pupils, mm (50–80).
    #[arg(long)]
    ipd_mm: Option<f32>,
    /// Shift a lens centre: `left=X,Y` or `right=X,Y` in the lens model's units (±0.2).
    #[arg(long, value_name = "EYE=X,Y")]
    lens_center: Vec<String>,
    /// Remove all display overrides.
    #[arg(long)]
    reset: bool,
    /// The headset's serial, when it is not plugged in.
    #[arg(long)]
    serial: Option<String>,
}

fn open_headset() -> Result<ViveHmd> {
    let t = vive::open_first().context(
        "no Vive-family headset on the HID bus (plugged in and powered? udev rule installed?)",
    )?;
    let hmd = ViveHmd::open(
        Box::new(t),
        ViveOptions {
            calibration: CalibrationSource::Ignore,
            fusion: None,
        },
    )
    .context("the headset did not answer its configuration requests")?;
    println!(
        "{} (serial {}) at {}",
        hmd.config.model_number,
        hmd.config.serial,
        hmd.path()
    );
    Ok(hmd)
}

fn confirm(question: &str) -> Result<bool> {
    print!("{question} [Y/n] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(!line.trim().eq_ignore_ascii_case("n"))
}

/// Saves after asking (unless `yes`).
fn save(cal: &Calibration, path: &std::path::Path, yes: bool) -> Result<()> {
    if yes || confirm(&format!("Save to {}?", path.display()))? {
        cal.save(path)?;
        println!(
            "Saved {} (applied the next time the headset starts).",
            path.display()
        );
    } else {
        println!("Not saved.");
    }
    Ok(())
}

fn load_existing(path: &std::path::Path) -> Calibration {
    match Calibration::load(path) {
        Ok(c) => c.unwrap_or_default(),
        Err(e) => {
            println!("  (ignoring the existing file: {e})");
            Calibration::default()
        }
    }
}

fn deg(v: DVec3) -> String {
    let d = v * (180.0 / std::f64::consts::PI);
    format!("[{:+.3}, {:+.3}, {:+.3}] °/s", d.x, d.y, d.z)
}

fn v3(v: DVec3, unit: &str) -> String {
    format!("[{:+.4}, {:+.4}, {:+.4}]{unit}", v.x, v.y, v.z)
}

/// A list of sides for the user: "-X up (on its right side), +Z up (…)".
fn sides(faces: &[Face]) -> String {
    faces
        .iter()
        .map(Face::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn imu(a: ImuArgs) -> Result<()> {
    let hmd = open_headset()?;
    let path = calibration::path_for(&hmd.config.serial)?;
    let goal = if a.gyro_only {
        println!("Put the headset down on a table and keep it completely still.");
        ImuGoal::GyroOnly {
            still_ns: 5_000_000_000,
        }
    } else {
        println!(
            "Put the headset down on each of its six sides in turn (top, bottom, left, right,\n\
             front, back), holding it completely still for about 2 s on each. Any side not\n\
             seen is named, and waited for (up to {} s in all).",
            a.seconds
        );
        ImuGoal::SixSides
    };
    if !a.yes {
        print!("Press Enter to start.");
        std::io::stdout().flush()?;
        std::io::stdin().lock().read_line(&mut String::new())?;
    }
    let rx = hmd.tap_samples(200_000);
    let bar = indicatif::ProgressBar::new(a.seconds);
    bar.set_style(indicatif::ProgressStyle::with_template(
        "  {bar:30} {elapsed:>3} {msg}",
    )?);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(a.seconds);
    let mut run = ImuRun::new(goal);
    let mut last_check = start;
    let mut done_at: Option<Instant> = None;
    // The missing sides last named to the user (named again when they change).
    let mut named: Vec<Face> = Vec::new();
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(s) => run.push(s),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if !hmd.is_connected() {
            bar.abandon();
            bail!("the headset was lost during calibration; nothing was saved");
        }
        if last_check.elapsed() < Duration::from_millis(250) {
            continue;
        }
        last_check = Instant::now();
        bar.set_position(start.elapsed().as_secs());
        let p = run.progress();
        let still = p.still_ns as f64 / 1e9;
        bar.set_message(match goal {
            ImuGoal::GyroOnly { .. } => format!("still {still:.1} s"),
            ImuGoal::SixSides if p.missing.len() <= 2 && !p.missing.is_empty() => format!(
                "still {still:.1} s, sides {}/6, waiting for {}",
                p.seen.len(),
                sides(&p.missing)
            ),
            ImuGoal::SixSides => format!("still {still:.1} s, sides {}/6", p.seen.len()),
        });
        // Once only a side or two is left, say which, on its own line (also where no
        // progress bar is drawn).
        if p.missing.len() <= 2 && !p.missing.is_empty() && p.missing != named {
            bar.suspend(|| println!("  waiting for: {}", sides(&p.missing)));
            named.clone_from(&p.missing);
        }
        if p.complete && done_at.is_none() {
            // Let the last hold finish.
            done_at =
                Some(Instant::now() + Duration::from_millis(if a.gyro_only { 0 } else { 800 }));
        }
        if done_at.is_some_and(|d| Instant::now() >= d) {
            break;
        }
    }
    bar.finish_and_clear();
    let waited = start.elapsed().as_secs_f64();
    let est = match run.finish() {
        Ok(est) => est,
        Err(e @ ImuRunError::MissingSides { .. }) => bail!(
            "after {waited:.0} s, {e}. Nothing was saved: run it again and hold the headset still \
             for about 2 s on each missing side (--seconds gives it longer; --gyro-only \
             measures the gyro bias alone)"
        ),
        Err(e) => bail!("after {waited:.0} s, {e}"),
    };
    let rests = run.rests();
    let rest_samples: Vec<&ImuSample> = rests.iter().flat_map(|r| r.iter()).collect();
    let gravity_err = |f: &dyn Fn(&ImuSample) -> DVec3| {
        rest_samples
            .iter()
            .map(|s| (f(s).length() - GRAVITY).abs())
            .sum::<f64>()
            / rest_samples.len() as f64
    };
    let mut cal = load_existing(&path);
    let prev = cal.imu;
    let (accel_bias, accel_scale) = match est.accel {
        Some(a) => a,
        None => prev
            .map(|p| (DVec3::from(p.accel_bias), DVec3::from(p.accel_scale)))
            .unwrap_or((DVec3::ZERO, DVec3::ONE)),
    };
    let new = ImuCalibration {
        gyro_bias: est.gyro_bias.to_array(),
        accel_bias: accel_bias.to_array(),
        accel_scale: accel_scale.to_array(),
        samples: est.rest_samples,
    };
    let after_gyro = rest_samples
        .iter()
        .map(|s| new.apply(s).gyro)
        .sum::<DVec3>()
        / rest_samples.len() as f64;
    println!(
        "Measured from {:.1} s at rest ({} sides):",
        est.rest_samples as f64 / 1000.0,
        est.faces.len()
    );
    println!("                          before                             after");
    println!(
        "  gyro bias        {:<34} {}",
        deg(est.gyro_bias),
        deg(after_gyro)
    );
    println!(
        "    (± {:.4} °/s standard error)",
        est.gyro_bias_stderr.to_degrees()
    );
    match est.accel {
        Some((b, s)) => {
            println!(
                "  accel bias       {:<34} {}",
                v3(b, " m/s²"),
                v3(DVec3::ZERO, " m/s²")
            );
            println!(
                "  accel scale      {:<34} {}",
                v3(s, ""),
                v3(DVec3::ONE, "")
            );
            println!(
                "  |g| error        {:<34} {:.4} m/s²",
                format!("{:.4} m/s²", gravity_err(&|s| s.accel)),
                gravity_err(&|s| new.apply(s).accel)
            );
        }
        None => println!(
            "  accelerometer: not measured (--gyro-only); kept {}",
            if prev.is_some() {
                "the previous values"
            } else {
                "the factory values"
            }
        ),
    }
    cal.imu = Some(new);
    save(&cal, &path, a.yes)
}

pub fn display(a: DisplayArgs) -> Result<()> {
    let (serial, hmd) = match &a.serial {
        Some(s) => (s.clone(), None),
        None => {
            let h = open_headset()?;
            (h.config.serial.clone(), Some(h))
        }
    };
    let path = calibration::path_for(&serial)?;
    let mut cal = load_existing(&path);
    let mut o = if a.reset {
        DisplayOverrides::default()
    } else {
        cal.display.unwrap_or_default()
    };
    if let Some(h) = &hmd {
        let d = h.display();
        println!(
            "  headset: lens separation {:.1} mm, panel {}x{}, eye render {}x{}",
            h.config.lens_separation_m * 1000.0,
            d.panel_width,
            d.panel_height,
            d.eye_render_width,
            d.eye_render_height
        );
    }
    if let Some(ipd) = a.ipd_mm {
        o.ipd_mm = Some(ipd);
    }
    for spec in &a.lens_center {
        let (eye, xy) = spec
            .split_once('=')
            .with_context(|| format!("--lens-center {spec:?}: expected EYE=X,Y"))?;
        let i = match eye {
            "left" => 0,
            "right" => 1,
            _ => bail!("--lens-center {spec:?}: EYE is left or right"),
        };
        let (x, y) = xy
            .split_once(',')
            .with_context(|| format!("--lens-center {spec:?}: expected X,Y"))?;
        let mut c = o.lens_center_offset.unwrap_or_default();
        c[i] = [
            x.trim().parse().context("lens centre X is not a number")?,
            y.trim().parse().context("lens centre Y is not a number")?,
        ];
        o.lens_center_offset = Some(c);
    }
    o.validate()?;
    let show = |o: &DisplayOverrides| {
        println!(
            "  IPD override: {}",
            o.ipd_mm
                .map(|v| format!("{v:.1} mm"))
                .unwrap_or("none (the headset's lens separation)".into())
        );
        match o.lens_center_offset {
            Some([l, r]) => println!(
                "  lens centre offsets: left [{:+.4}, {:+.4}], right [{:+.4}, {:+.4}]",
                l[0], l[1], r[0], r[1]
            ),
            None => println!("  lens centre offsets: none"),
        }
    };
    show(&o);
    let changed = a.reset || a.ipd_mm.is_some() || !a.lens_center.is_empty();
    if !changed {
        println!("(nothing to change: use --ipd-mm, --lens-center or --reset)");
        return Ok(());
    }
    cal.display = (o != DisplayOverrides::default()).then_some(o);
    save(&cal, &path, a.yes)
}
