//! Headset EDIDs for the lab: the kernel reads them through `drm.edid_firmware`, marks the
//! connector non-desktop when the ids are a known HMD's, and offers their modes.

/// A headset identity the lab can impersonate.
pub struct LabHmd {
    pub name: &'static str,
    pub manufacturer: [u8; 3],
    pub product: u16,
    pub display_name: &'static str,
    /// The panel's native mode: width, height, refresh (Hz).
    pub native: (u16, u16, u32),
}

pub const LAB_HMDS: &[LabHmd] = &[
    LabHmd {
        name: "vive",
        manufacturer: *b"HVR",
        product: 0xAA01,
        display_name: "HTC-VIVE",
        native: (2160, 1200, 90),
    },
    LabHmd {
        name: "vive-pro",
        manufacturer: *b"HVR",
        product: 0xAA02,
        display_name: "HTC-VIVE-PRO",
        native: (2880, 1600, 90),
    },
    LabHmd {
        name: "index",
        manufacturer: *b"VLV",
        product: 0x91A8,
        display_name: "Index HMD",
        native: (2880, 1600, 90),
    },
    LabHmd {
        name: "rift-cv1",
        manufacturer: *b"OVR",
        product: 0x0012,
        display_name: "Rift CV1",
        native: (2160, 1200, 90),
    },
];

pub fn find(name: &str) -> Result<&'static LabHmd, String> {
    LAB_HMDS.iter().find(|h| h.name == name).ok_or_else(|| {
        let names: Vec<&str> = LAB_HMDS.iter().map(|h| h.name).collect();
        format!("unknown headset EDID `{name}`; known: {}", names.join(", "))
    })
}

/// Parses `WxH@Hz`.
pub fn parse_mode(s: &str) -> Result<(u16, u16, u32), String> {
    let bad = || format!("mode `{s}` is not WxH@Hz (e.g. 640x360@90)");
    let (size, hz) = s.split_once('@').ok_or_else(bad)?;
    let (w, h) = size.split_once('x').ok_or_else(bad)?;
    let w: u16 = w.parse().map_err(|_| bad())?;
    let h: u16 = h.parse().map_err(|_| bad())?;
    let hz: u32 = hz.parse().map_err(|_| bad())?;
    if w < 64 || h < 64 || w > 4095 || h > 4095 || !(24..=480).contains(&hz) {
        return Err(format!(
            "mode `{s}` is out of range (64..4095 pixels, 24..480 Hz)"
        ));
    }
    Ok((w, h, hz))
}

/// A 128-byte EDID 1.4 base block for `hmd` whose preferred (first detailed) timing is
/// `mode`, with reduced blanking so that high refresh rates fit the 655.35 MHz limit.
pub fn build(hmd: &LabHmd, (w, h, hz): (u16, u16, u32)) -> Result<[u8; 128], String> {
    let (hblank, hso, hsw) = (80u32, 8u32, 32u32);
    let (vblank, vso, vsw) = (40u32, 3u32, 5u32);
    let htotal = u32::from(w) + hblank;
    let vtotal = u32::from(h) + vblank;
    let clock_10khz = (u64::from(htotal) * u64::from(vtotal) * u64::from(hz)).div_ceil(10_000);
    let clock = u16::try_from(clock_10khz).map_err(|_| {
        format!("{w}x{h}@{hz} needs a pixel clock above an EDID timing's 655.35 MHz")
    })?;
    let mut b = [0u8; 128];
    b[..8].copy_from_slice(&[0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0]);
    let m = hmd
        .manufacturer
        .iter()
        .fold(0u16, |a, &c| (a << 5) | u16::from(c - b'A' + 1));
    b[8..10].copy_from_slice(&m.to_be_bytes());
    b[10..12].copy_from_slice(&hmd.product.to_le_bytes());
    b[12..16].copy_from_slice(&1u32.to_le_bytes());
    b[16] = 1; // week
    b[17] = 26; // 2016 (years since 1990)
    b[18] = 1;
    b[19] = 4;
    b[20] = 0xA5; // digital, 8 bpc, DisplayPort
    b[21] = 0; // size unknown: an HMD has no meaningful screen size
    b[22] = 0;
    b[23] = 120; // gamma 2.2
    b[24] = 0x02; // preferred timing is native
    // sRGB-ish chromaticity
    b[25..35].copy_from_slice(&[0xEE, 0x91, 0xA3, 0x54, 0x4C, 0x99, 0x26, 0x0F, 0x50, 0x54]);
    for i in 0..8 {
        b[38 + 2 * i] = 1;
        b[39 + 2 * i] = 1;
    }
    let d = &mut b[54..72];
    d[0..2].copy_from_slice(&clock.to_le_bytes());
    let (w, h) = (u32::from(w), u32::from(h));
    d[2] = (w & 0xFF) as u8;
    d[3] = (hblank & 0xFF) as u8;
    d[4] = (((w >> 8) & 0xF) << 4 | ((hblank >> 8) & 0xF)) as u8;
    d[5] = (h & 0xFF) as u8;
    d[6] = (vblank & 0xFF) as u8;
    d[7] = (((h >> 8) & 0xF) << 4 | ((vblank >> 8) & 0xF)) as u8;
    d[8] = hso as u8;
    d[9] = hsw as u8;
    d[10] = ((vso & 0xF) << 4 | (vsw & 0xF)) as u8;
    d[11] = 0;
    d[17] = 0x1E; // digital separate sync, +h +v
    // Display product name.
    let n = &mut b[72..90];
    n[3] = 0xFC;
    let mut text = [b' '; 13];
    let name = hmd.display_name.as_bytes();
    let len = name.len().min(12);
    text[..len].copy_from_slice(&name[..len]);
    text[len] = b'\n';
    n[5..18].copy_from_slice(&text);
    // Range limits, so the kernel accepts the refresh rate.
    let r = &mut b[90..108];
    r[3] = 0xFD;
    r[5] = 24;
    r[6] = 240;
    r[7] = 1;
    r[8] = 255;
    r[9] = 66; // max pixel clock 660 MHz in 10 MHz units
    r[10] = 0x01; // range limits only
    r[11..18].copy_from_slice(&[0x0A, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20]);
    // Dummy descriptor.
    b[108 + 3] = 0x10;
    let sum = b[..127].iter().fold(0u8, |a, &x| a.wrapping_add(x));
    b[127] = 0u8.wrapping_sub(sum);
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vive_edid_is_valid() {
        let e = build(find("vive").unwrap(), (2160, 1200, 90)).unwrap();
        assert_eq!(e.iter().fold(0u8, |a, &x| a.wrapping_add(x)), 0);
        assert_eq!(&e[8..10], &[0x22, 0xD2]); // "HVR"
        assert_eq!(u16::from_le_bytes([e[10], e[11]]), 0xAA01);
        let clock = u32::from(u16::from_le_bytes([e[54], e[55]])) * 10_000;
        let hz = f64::from(clock) / f64::from((2160 + 80) * (1200 + 40));
        assert!((hz - 90.0).abs() < 0.01, "{hz}");
    }

    #[test]
    fn modes_parse_and_limits_hold() {
        assert_eq!(parse_mode("640x360@90").unwrap(), (640, 360, 90));
        assert!(parse_mode("640x360").is_err());
        assert!(parse_mode("0x360@90").is_err());
        assert!(build(find("index").unwrap(), (4000, 4000, 144)).is_err());
        assert!(find("nope").is_err());
    }
}
