//! A CPU implementation of the compositor's distortion pass, for tests: the same lens
//! model evaluated exactly per pixel, sRGB decoded before bilinear filtering and encoded
//! after, black outside the valid radius and outside the eye image.

use super::pattern::RgbaImage;
use leasehold_drivers::api::LensModel;

pub fn srgb_to_linear(c: u8) -> f32 {
    let c = c as f32 / 255.0;
    if c <= 0.04045 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

pub fn linear_to_srgb(l: f32) -> u8 {
    let l = l.clamp(0.0, 1.0);
    let c = if l <= 0.0031308 {
        l * 12.92
    } else {
        1.055 * l.powf(1.0 / 2.4) - 0.055
    };
    (c * 255.0 + 0.5) as u8
}

/// Bilinear sample of channel `ch` at normalised (u, v), clamp-to-edge, in linear light
/// (as a GPU's linear filter over an sRGB texture does).
pub fn sample_linear(img: &RgbaImage, ch: usize, u: f32, v: f32) -> f32 {
    let x = u * img.width as f32 - 0.5;
    let y = v * img.height as f32 - 0.5;
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let at = |xi: f32, yi: f32| {
        let xi = (xi as i64).clamp(0, img.width as i64 - 1) as u32;
        let yi = (yi as i64).clamp(0, img.height as i64 - 1) as u32;
        srgb_to_linear(img.pixel(xi, yi)[ch])
    };
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1.0, y0) * fx;
    let bottom = at(x0, y0 + 1.0) * (1.0 - fx) + at(x0 + 1.0, y0 + 1.0) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// The panel image the compositor should produce from two eye images.
pub fn distort(lens: &LensModel, eyes: [&RgbaImage; 2], panel_w: u32, panel_h: u32) -> RgbaImage {
    let mut out = RgbaImage::new(panel_w, panel_h);
    let half = panel_w / 2;
    for y in 0..panel_h {
        for x in 0..panel_w {
            let eye = (x / half).min(1) as usize;
            let u = ((x - eye as u32 * half) as f32 + 0.5) / half as f32;
            let v = (y as f32 + 0.5) / panel_h as f32;
            let (uv, inside) = lens.sample(eye, u, v);
            let mut c = [0u8, 0, 0, 255];
            if inside {
                for ch in 0..3 {
                    let p = uv[ch];
                    if (0.0..=1.0).contains(&p.x) && (0.0..=1.0).contains(&p.y) {
                        c[ch] = linear_to_srgb(sample_linear(eyes[eye], ch, p.x, p.y));
                    }
                }
            }
            out.put(x, y, c);
        }
    }
    out
}

/// Peak signal-to-noise ratio over the colour channels, dB (infinite when equal).
pub fn psnr(a: &RgbaImage, b: &RgbaImage) -> f64 {
    assert_eq!((a.width, a.height), (b.width, b.height));
    let mut se = 0.0f64;
    let mut n = 0u64;
    for (pa, pb) in a.data.chunks(4).zip(b.data.chunks(4)) {
        for c in 0..3 {
            let d = pa[c] as f64 - pb[c] as f64;
            se += d * d;
            n += 1;
        }
    }
    if se == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (255.0f64 * 255.0 / (se / n as f64)).log10()
}

/// Largest per-channel difference over pixels whose 3x3 neighbourhood in `reference`
/// is smooth (no step above `edge` levels): "away from edges".
pub fn max_error_away_from_edges(reference: &RgbaImage, other: &RgbaImage, edge: u8) -> u8 {
    let mut worst = 0u8;
    for y in 1..reference.height - 1 {
        for x in 1..reference.width - 1 {
            let c = reference.pixel(x, y);
            let smooth = (0..3).all(|dy| {
                (0..3).all(|dx| {
                    let n = reference.pixel(x + dx - 1, y + dy - 1);
                    (0..3).all(|k| n[k].abs_diff(c[k]) <= edge)
                })
            });
            if smooth {
                let o = other.pixel(x, y);
                for k in 0..3 {
                    worst = worst.max(o[k].abs_diff(c[k]));
                }
            }
        }
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srgb_round_trips_every_level() {
        for c in 0..=255u8 {
            assert_eq!(linear_to_srgb(srgb_to_linear(c)), c);
        }
    }

    #[test]
    fn identity_lens_reproduces_the_eye_images() {
        let l = super::super::pattern::test_pattern(64, 48, 0);
        let r = super::super::pattern::test_pattern(64, 48, 1);
        let out = distort(&LensModel::None, [&l, &r], 128, 48);
        for y in 0..48 {
            for x in 0..64 {
                assert_eq!(out.pixel(x, y)[..3], l.pixel(x, y)[..3]);
                assert_eq!(out.pixel(x + 64, y)[..3], r.pixel(x, y)[..3]);
            }
        }
        assert_eq!(psnr(&out, &out), f64::INFINITY);
    }
}
