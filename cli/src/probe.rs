//! `leasehold probe`: what this machine offers, read from the real system.

use leasehold_compositor::kms::{self, Card, ConnectorInfo};
use leasehold_compositor::vk;
use leasehold_drivers::hid;
use std::path::Path;

pub fn run() -> anyhow::Result<()> {
    drm_section();
    vulkan_section();
    hid_section();
    Ok(())
}

fn heading(s: &str) {
    println!("\x1b[1m{s}\x1b[0m");
}

/// `PCI_ID` and `DRIVER` of a card from sysfs (`/sys/class/drm/cardN/device/uevent`).
fn sysfs_device(card: &Path) -> Option<String> {
    let name = card.file_name()?.to_str()?;
    let uevent = std::fs::read_to_string(format!("/sys/class/drm/{name}/device/uevent")).ok()?;
    let field = |k: &str| {
        uevent
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(str::to_string)
    };
    match (field("PCI_ID="), field("DRIVER=")) {
        (Some(id), Some(d)) => Some(format!("PCI {} ({d})", id.to_lowercase())),
        (None, Some(d)) => Some(format!("platform device ({d})")),
        _ => None,
    }
}

fn drm_section() {
    heading("Display (DRM/KMS)");
    let cards = kms::cards();
    if cards.is_empty() {
        let why = if Path::new("/dev/dri").exists() {
            "/dev/dri has no card nodes"
        } else {
            "/dev/dri does not exist"
        };
        println!("  no DRM devices: {why}. This machine has no display outputs to lease.");
        return;
    }
    for path in cards {
        let card = match Card::open(&path) {
            Ok(c) => c,
            Err(e) => {
                println!("  {}: {e}", path.display());
                continue;
            }
        };
        let driver = card
            .driver()
            .map(|d| format!("{} ({})", d.name, d.description))
            .unwrap_or_else(|e| format!("driver unknown: {e}"));
        let master = if card.acquire_master() {
            "master: yes"
        } else {
            "master: no (another process holds it)"
        };
        let dev = sysfs_device(&path)
            .map(|s| format!(", {s}"))
            .unwrap_or_default();
        println!("  {}  {driver}{dev}, {master}", path.display());
        match card.connectors() {
            Ok(cs) if cs.is_empty() => println!("    no connectors (a render-only device)"),
            Ok(cs) => cs.iter().for_each(print_connector),
            // EOPNOTSUPP: the driver has no modesetting at all (vgem, render-only GPUs).
            Err(e) if e.errno() == Some(95) => {
                println!("    no display engine (render-only device)")
            }
            Err(e) => println!("    cannot list connectors: {e}"),
        }
    }
}

fn print_connector(c: &ConnectorInfo) {
    let state = if c.connected {
        "connected"
    } else {
        "disconnected"
    };
    let nd = match c.non_desktop {
        Some(true) => ", non-desktop",
        Some(false) => "",
        None => ", (no non-desktop property)",
    };
    let mark = if c.connected && c.is_headset_candidate() {
        "  ← headset candidate"
    } else {
        ""
    };
    println!("    {} {state}{nd}{mark}", c.name);
    if let Some(e) = &c.edid {
        let name = e
            .name
            .as_deref()
            .map(|n| format!(" \"{n}\""))
            .unwrap_or_default();
        let family = e
            .known_hmd()
            .map(|h| format!(", known HMD: {}", h.name))
            .unwrap_or_default();
        println!(
            "      EDID: {}:{:#06x}{name}, {}{family}",
            e.manufacturer, e.product, e.year
        );
    } else if let Some(err) = &c.edid_error {
        println!("      EDID unreadable: {err}");
    }
    if !c.modes.is_empty() {
        let preferred = c.preferred_mode();
        let modes: Vec<String> = c
            .modes
            .iter()
            .take(8)
            .map(|m| {
                let (w, h) = m.size();
                let star = if Some(*m) == preferred { "*" } else { "" };
                format!("{w}x{h}@{}{star}", m.vrefresh())
            })
            .collect();
        let more = c.modes.len().saturating_sub(8);
        let more = if more > 0 {
            format!(" (+{more} more)")
        } else {
            String::new()
        };
        println!("      modes: {}{more}", modes.join(", "));
    }
}

fn vulkan_section() {
    heading("Vulkan");
    match vk::probe() {
        Err(e) => println!("  unavailable: {e}"),
        Ok((_, gpus)) if gpus.is_empty() => println!("  the loader found no Vulkan devices"),
        Ok((instance, gpus)) => {
            println!(
                "  loader: Vulkan {}.{}",
                leasehold_compositor::vk::api_major(instance),
                leasehold_compositor::vk::api_minor(instance)
            );
            for g in gpus {
                let (ma, mi, pa) = g.api_version;
                let node = match (g.primary_node, g.render_node) {
                    (Some((a, b)), _) => format!(", DRM node {a}:{b}"),
                    (None, Some((a, b))) => format!(", render node {a}:{b}"),
                    _ => String::new(),
                };
                println!(
                    "  {} ({:?}, {:04x}:{:04x}), Vulkan {ma}.{mi}.{pa}{node}",
                    g.name, g.device_type, g.vendor_id, g.device_id
                );
                if let Some(d) = &g.driver {
                    println!("    driver: {d}");
                }
                let caps: Vec<String> = vk::INTERESTING_EXTENSIONS
                    .iter()
                    .zip(&g.extensions)
                    .map(|((label, _), &have)| {
                        format!("{label}: {}", if have { "yes" } else { "no" })
                    })
                    .collect();
                println!("    {}", caps.join(", "));
            }
        }
    }
}

fn hid_section() {
    heading("Headsets on HID");
    match hid::find_headsets() {
        Err(e) => println!("  cannot enumerate HID devices: {e}"),
        Ok(list) if list.is_empty() => {
            let note = if Path::new("/dev").read_dir().is_ok_and(|mut d| {
                d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("hidraw")))
            }) {
                "no known headset among the hidraw devices"
            } else {
                "no hidraw devices on this machine"
            };
            println!("  none found ({note})");
        }
        Ok(list) => {
            for h in list {
                println!(
                    "  {} {}: {:04x}:{:04x} interface {} at {}{}",
                    h.family,
                    h.role,
                    h.vendor_id,
                    h.product_id,
                    h.interface,
                    h.path,
                    h.product.map(|p| format!(" \"{p}\"")).unwrap_or_default()
                );
            }
        }
    }
    // What the OpenXR runtime would drive, decided as it decides.
    use leasehold_drivers::headset::{Preference, choose};
    match Preference::from_env() {
        Err(e) => println!("  the runtime: {e}"),
        Ok(pref) => {
            let c = choose(pref, 0);
            let what = if c.simulated {
                "the simulated headset"
            } else {
                "this headset"
            };
            println!("  the runtime drives {what}: {}", c.why);
        }
    }
    // Where its frames would go, decided as it decides (the lease taken is let go).
    use leasehold_compositor::kms::display::{self, Preference as Target};
    match Target::from_env().and_then(display::choose) {
        Err(e) => println!("  the runtime shows frames on: nothing ({e})"),
        Ok(d) => println!(
            "  the runtime shows frames on: {}\n    why: {}",
            d.describe(),
            d.why()
        ),
    }
}
