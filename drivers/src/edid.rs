//! EDID 1.3/1.4 base-block parsing.
//!
//! A display's EDID is how the kernel and we learn what is plugged in: the manufacturer's
//! three-letter PNP id and product code identify headsets (the kernel's own non-desktop
//! quirk list works the same way), and the detailed timing descriptors carry the panel's
//! native modes, including the high refresh rates headsets run at. Only the 128-byte base
//! block is read; extension blocks (CTA, DisplayID) are counted but not interpreted.
//! Every field is bounds-checked: EDID arrives from devices and must never panic a parser.

use std::fmt;

/// Size of the EDID base block.
pub const BLOCK_LEN: usize = 128;
const HEADER: [u8; 8] = [0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EdidError {
    #[error("EDID is {0} bytes, shorter than the 128-byte base block")]
    Truncated(usize),
    #[error("EDID header is not 00 FF FF FF FF FF FF 00")]
    BadHeader,
    #[error("EDID base block checksum is {0:#04x}, not 0")]
    BadChecksum(u8),
}

/// A three-letter PNP manufacturer id ("HVR" for HTC VR, "VLV" for Valve, …).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ManufacturerId(pub [u8; 3]);

impl ManufacturerId {
    /// Decodes the big-endian packed 5-bit letters of EDID bytes 8–9.
    pub fn from_packed(raw: u16) -> Self {
        let letter = |shift: u16| {
            let v = ((raw >> shift) & 0x1F) as u8;
            if (1..=26).contains(&v) {
                b'A' + v - 1
            } else {
                b'?'
            }
        };
        Self([letter(10), letter(5), letter(0)])
    }

    /// Packs three upper-case letters the way EDID stores them.
    pub fn packed(&self) -> u16 {
        self.0.iter().fold(0u16, |acc, &c| {
            (acc << 5) | u16::from(c.saturating_sub(b'A' - 1) & 0x1F)
        })
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Debug for ManufacturerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ManufacturerId({})", self.as_str())
    }
}

impl fmt::Display for ManufacturerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A detailed timing descriptor: one exact video mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetailedTiming {
    pub pixel_clock_khz: u32,
    pub hactive: u16,
    pub hblank: u16,
    pub hsync_offset: u16,
    pub hsync_width: u16,
    pub vactive: u16,
    pub vblank: u16,
    pub vsync_offset: u16,
    pub vsync_width: u16,
    pub interlaced: bool,
}

impl DetailedTiming {
    pub fn htotal(&self) -> u32 {
        u32::from(self.hactive) + u32::from(self.hblank)
    }

    pub fn vtotal(&self) -> u32 {
        u32::from(self.vactive) + u32::from(self.vblank)
    }

    /// Refresh rate in millihertz, exact to the pixel clock's 10 kHz resolution.
    pub fn refresh_mhz(&self) -> u32 {
        let total = u64::from(self.htotal()) * u64::from(self.vtotal());
        if total == 0 {
            return 0;
        }
        (u64::from(self.pixel_clock_khz) * 1_000_000 / total) as u32
    }

    /// Frame period in nanoseconds.
    pub fn period_ns(&self) -> u64 {
        if self.pixel_clock_khz == 0 {
            return 0;
        }
        u64::from(self.htotal()) * u64::from(self.vtotal()) * 1_000_000
            / u64::from(self.pixel_clock_khz)
    }

    fn parse(d: &[u8; 18]) -> Option<Self> {
        let clock = u16::from_le_bytes([d[0], d[1]]);
        if clock == 0 {
            return None; // a display descriptor, not a timing
        }
        let hi4 = |b: u8| u16::from(b >> 4);
        let lo4 = |b: u8| u16::from(b & 0x0F);
        Some(Self {
            pixel_clock_khz: u32::from(clock) * 10,
            hactive: u16::from(d[2]) | (hi4(d[4]) << 8),
            hblank: u16::from(d[3]) | (lo4(d[4]) << 8),
            vactive: u16::from(d[5]) | (hi4(d[7]) << 8),
            vblank: u16::from(d[6]) | (lo4(d[7]) << 8),
            hsync_offset: u16::from(d[8]) | (u16::from((d[11] >> 6) & 3) << 8),
            hsync_width: u16::from(d[9]) | (u16::from((d[11] >> 4) & 3) << 8),
            vsync_offset: u16::from(d[10] >> 4) | (u16::from((d[11] >> 2) & 3) << 4),
            vsync_width: u16::from(d[10] & 0x0F) | (u16::from(d[11] & 3) << 4),
            interlaced: d[17] & 0x80 != 0,
        })
    }
}

/// What the base block says about a display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edid {
    pub manufacturer: ManufacturerId,
    pub product: u16,
    pub serial: u32,
    pub year: u16,
    pub version: (u8, u8),
    /// Display product name descriptor (tag 0xFC), if present.
    pub name: Option<String>,
    /// Serial string descriptor (tag 0xFF), if present.
    pub serial_string: Option<String>,
    /// Detailed timings in descriptor order; the first is the preferred mode.
    pub timings: Vec<DetailedTiming>,
    /// Physical size in centimetres (0 when unknown, e.g. projectors and many HMDs).
    pub size_cm: (u8, u8),
    pub extension_blocks: u8,
}

impl Edid {
    pub fn parse(bytes: &[u8]) -> Result<Self, EdidError> {
        let Some(b) = bytes.get(..BLOCK_LEN) else {
            return Err(EdidError::Truncated(bytes.len()));
        };
        if b[..8] != HEADER {
            return Err(EdidError::BadHeader);
        }
        let sum = b.iter().fold(0u8, |a, &x| a.wrapping_add(x));
        if sum != 0 {
            return Err(EdidError::BadChecksum(sum));
        }
        let mut name = None;
        let mut serial_string = None;
        let mut timings = Vec::new();
        for i in 0..4 {
            let start = 54 + i * 18;
            let mut d = [0u8; 18];
            d.copy_from_slice(&b[start..start + 18]);
            if let Some(t) = DetailedTiming::parse(&d) {
                timings.push(t);
            } else {
                match d[3] {
                    0xFC => name = Some(descriptor_text(&d[5..])),
                    0xFF => serial_string = Some(descriptor_text(&d[5..])),
                    _ => {}
                }
            }
        }
        Ok(Self {
            manufacturer: ManufacturerId::from_packed(u16::from_be_bytes([b[8], b[9]])),
            product: u16::from_le_bytes([b[10], b[11]]),
            serial: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
            year: 1990 + u16::from(b[17]),
            version: (b[18], b[19]),
            name,
            serial_string,
            timings,
            size_cm: (b[21], b[22]),
            extension_blocks: b[126],
        })
    }

    /// The preferred mode (EDID 1.3+: the first detailed timing).
    pub fn preferred(&self) -> Option<&DetailedTiming> {
        self.timings.first()
    }

    /// The headset profile whose EDID ids match this display, if it is a known HMD.
    pub fn known_hmd(&self) -> Option<&'static crate::profile::HeadsetProfile> {
        crate::profile::for_edid(self)
    }
}

fn descriptor_text(raw: &[u8]) -> String {
    let end = raw.iter().position(|&c| c == b'\n').unwrap_or(raw.len());
    raw[..end]
        .iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                c as char
            } else {
                '?'
            }
        })
        .collect::<String>()
        .trim_end()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-assembled Vive-like EDID: HVR/0xAA01, 2160x1200 at 90 Hz, name "HTC-VIVE".
    fn vive_like() -> Vec<u8> {
        let mut b = vec![0u8; 128];
        b[..8].copy_from_slice(&HEADER);
        b[8..10].copy_from_slice(&ManufacturerId(*b"HVR").packed().to_be_bytes());
        b[10..12].copy_from_slice(&0xAA01u16.to_le_bytes());
        b[17] = 26; // 2016
        b[18] = 1;
        b[19] = 4;
        // 2160x1200, hblank 160, vblank 40, clock 2320*1240*90 Hz = 258.912 MHz -> 25891 x 10 kHz
        let d = &mut b[54..72];
        d[0..2].copy_from_slice(&25891u16.to_le_bytes());
        d[2] = (2160 & 0xFF) as u8;
        d[3] = 160;
        d[4] = ((2160 >> 8) as u8) << 4;
        d[5] = (1200 & 0xFF) as u8;
        d[6] = 40;
        d[7] = ((1200 >> 8) as u8) << 4;
        d[8] = 48;
        d[9] = 32;
        d[10] = (3 << 4) | 5;
        d[17] = 0x1E;
        let n = &mut b[72..90];
        n[3] = 0xFC;
        n[5..18].copy_from_slice(b"HTC-VIVE\n    ");
        let sum = b.iter().fold(0u8, |a, &x| a.wrapping_add(x));
        b[127] = 0u8.wrapping_sub(sum);
        b
    }

    #[test]
    fn parses_identity_name_and_preferred_mode() {
        let e = Edid::parse(&vive_like()).unwrap();
        assert_eq!(e.manufacturer.as_str(), "HVR");
        assert_eq!(e.product, 0xAA01);
        assert_eq!(e.year, 2016);
        assert_eq!(e.name.as_deref(), Some("HTC-VIVE"));
        let t = e.preferred().unwrap();
        assert_eq!((t.hactive, t.vactive), (2160, 1200));
        assert_eq!((t.htotal(), t.vtotal()), (2320, 1240));
        // 258.91 MHz / (2320*1240) = 89.9996 Hz
        assert_eq!(t.refresh_mhz(), 89_999);
        assert_eq!(t.period_ns(), 11_111_196);
        assert_eq!(e.known_hmd().unwrap().name, "HTC Vive");
    }

    #[test]
    fn manufacturer_packing_round_trips() {
        for id in [*b"HVR", *b"VLV", *b"BIG", *b"OVR", *b"AAA", *b"ZZZ"] {
            let m = ManufacturerId(id);
            assert_eq!(ManufacturerId::from_packed(m.packed()), m);
        }
        assert_eq!(ManufacturerId::from_packed(0).as_str(), "???");
    }

    #[test]
    fn rejects_bad_input_without_panicking() {
        let good = vive_like();
        assert_eq!(Edid::parse(&good[..100]), Err(EdidError::Truncated(100)));
        assert_eq!(Edid::parse(&[]), Err(EdidError::Truncated(0)));
        let mut bad = good.clone();
        bad[0] = 1;
        assert_eq!(Edid::parse(&bad), Err(EdidError::BadHeader));
        let mut bad = good.clone();
        bad[20] ^= 0x40;
        assert!(matches!(Edid::parse(&bad), Err(EdidError::BadChecksum(_))));
        // Every single-byte corruption of every position parses or errors, never panics.
        for i in 0..128 {
            for v in [0x00, 0x7F, 0xFF] {
                let mut m = good.clone();
                m[i] = v;
                let _ = Edid::parse(&m);
            }
        }
    }

    #[test]
    fn unknown_display_is_not_an_hmd() {
        let mut b = vive_like();
        b[10] = 0x02;
        b[11] = 0x00;
        let sum = b[..127].iter().fold(0u8, |a, &x| a.wrapping_add(x));
        b[127] = 0u8.wrapping_sub(sum);
        assert!(Edid::parse(&b).unwrap().known_hmd().is_none());
    }
}
