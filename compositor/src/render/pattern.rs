//! Images for tests, benchmarks and the demo: an RGBA8 (sRGB-encoded) buffer type and a
//! test pattern per eye (grid, colour bars, an eye marker) that makes distortion,
//! chromatic aberration and misplacement visible at a glance.

/// An RGBA8 image, rows top to bottom, sRGB-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbaImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl RgbaImage {
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            data: vec![0; (width * height * 4) as usize],
        }
    }

    pub fn pixel(&self, x: u32, y: u32) -> [u8; 4] {
        let i = ((y * self.width + x) * 4) as usize;
        [
            self.data[i],
            self.data[i + 1],
            self.data[i + 2],
            self.data[i + 3],
        ]
    }

    pub fn put(&mut self, x: u32, y: u32, c: [u8; 4]) {
        let i = ((y * self.width + x) * 4) as usize;
        self.data[i..i + 4].copy_from_slice(&c);
    }

    /// Writes a PNG (sRGB).
    pub fn write_png(&self, path: &std::path::Path) -> std::io::Result<()> {
        let f = std::io::BufWriter::new(std::fs::File::create(path)?);
        let mut enc = png::Encoder::new(f, self.width, self.height);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_source_srgb(png::SrgbRenderingIntent::Perceptual);
        let mut w = enc.write_header().map_err(std::io::Error::other)?;
        w.write_image_data(&self.data)
            .map_err(std::io::Error::other)?;
        w.finish().map_err(std::io::Error::other)
    }

    /// Reads an 8-bit RGBA PNG (what [`RgbaImage::write_png`] writes).
    pub fn read_png(path: &std::path::Path) -> std::io::Result<Self> {
        let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path)?));
        let mut r = dec.read_info().map_err(std::io::Error::other)?;
        let mut data = vec![0; r.output_buffer_size()];
        let info = r.next_frame(&mut data).map_err(std::io::Error::other)?;
        if (info.color_type, info.bit_depth) != (png::ColorType::Rgba, png::BitDepth::Eight) {
            return Err(std::io::Error::other(format!(
                "{}: {:?} {:?}, not 8-bit RGBA",
                path.display(),
                info.color_type,
                info.bit_depth
            )));
        }
        data.truncate(info.buffer_size());
        Ok(Self {
            width: info.width,
            height: info.height,
            data,
        })
    }
}

const BARS: [[u8; 3]; 8] = [
    [235, 235, 235],
    [235, 235, 16],
    [16, 235, 235],
    [16, 235, 16],
    [235, 16, 235],
    [235, 16, 16],
    [16, 16, 235],
    [16, 16, 16],
];

/// The test pattern for one eye: a dark gradient, a white grid every `width / 16`
/// pixels, colour bars across the middle third, and a marker square (red for the left
/// eye, blue for the right) above the centre.
pub fn test_pattern(width: u32, height: u32, eye: usize) -> RgbaImage {
    let mut img = RgbaImage::new(width, height);
    let step = (width / 16).max(4);
    for y in 0..height {
        for x in 0..width {
            let g = (40.0 + 60.0 * x as f32 / width as f32) as u8;
            let mut c = [g, g, (40.0 + 60.0 * y as f32 / height as f32) as u8, 255];
            let band = y >= height / 3 && y < 2 * height / 3;
            if band {
                let b = BARS[(x * 8 / width) as usize];
                c = [b[0], b[1], b[2], 255];
            }
            let (cx, cy) = (width / 2, height / 2);
            if x.abs_diff(cx) < step / 2 && y + step < cy && cy - y < 2 * step {
                c = if eye == 0 {
                    [220, 30, 30, 255]
                } else {
                    [30, 60, 220, 255]
                };
            }
            if x % step < 2 || y % step < 2 {
                c = [250, 250, 250, 255];
            }
            img.put(x, y, c);
        }
    }
    img
}

/// A black image with one vertical white line `thickness` pixels wide at column `x`.
pub fn vertical_line(width: u32, height: u32, x: u32, thickness: u32) -> RgbaImage {
    let mut img = RgbaImage::new(width, height);
    for y in 0..height {
        for c in x..(x + thickness).min(width) {
            img.put(c, y, [255, 255, 255, 255]);
        }
        for c in 0..width {
            if c < x || c >= x + thickness {
                img.put(c, y, [0, 0, 0, 255]);
            }
        }
    }
    img
}
