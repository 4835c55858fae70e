//! A CPU implementation of the compositor's pass, for tests: the same lens model and
//! layer geometry evaluated exactly per pixel, sRGB decoded before bilinear filtering and
//! encoded after, black outside the valid radius and outside the eye's field of view.
//! [`distort`] is the special case of one eye image per eye that covers the eye's field
//! of view with no timewarp.

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
    bilinear(img, u, v, |p| srgb_to_linear(p[ch]))
}

/// Bilinear sample of the alpha channel (stored linearly in sRGB formats).
fn sample_alpha(img: &RgbaImage, u: f32, v: f32) -> f32 {
    bilinear(img, u, v, |p| p[3] as f32 / 255.0)
}

/// Bilinear filter of `value` of the texels around normalised (u, v), clamp-to-edge.
fn bilinear(img: &RgbaImage, u: f32, v: f32, value: impl Fn([u8; 4]) -> f32) -> f32 {
    let x = u * img.width as f32 - 0.5;
    let y = v * img.height as f32 - 0.5;
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let at = |xi: f32, yi: f32| {
        let xi = (xi as i64).clamp(0, img.width as i64 - 1) as u32;
        let yi = (yi as i64).clamp(0, img.height as i64 - 1) as u32;
        value(img.pixel(xi, yi))
    };
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1.0, y0) * fx;
    let bottom = at(x0, y0 + 1.0) * (1.0 - fx) + at(x0 + 1.0, y0 + 1.0) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// The panel image the compositor should produce from two eye images.
pub fn distort(lens: &LensModel, eyes: [&RgbaImage; 2], panel_w: u32, panel_h: u32) -> RgbaImage {
    through_lens(lens, panel_w, panel_h, |eye, ch, p| {
        linear_to_srgb(sample_linear(eyes[eye], ch, p.x, p.y))
    })
}

/// A panel (one eye per half) whose every pixel inside the lens's valid radius takes,
/// per colour channel, `channel(eye, ch, position)` at the eye-image position the lens
/// sends that channel to (0..1 across the eye's field of view); black elsewhere and where
/// a channel looks outside the field.
fn through_lens(
    lens: &LensModel,
    panel_w: u32,
    panel_h: u32,
    channel: impl Fn(usize, usize, glam::Vec2) -> u8,
) -> RgbaImage {
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
                        c[ch] = channel(eye, ch, p);
                    }
                }
            }
            out.put(x, y, c);
        }
    }
    out
}

/// Where the layer draw `push` (the plan's push constants, `shaders/panel.wgsl`'s
/// layout) samples its sub-image for the eye-space direction `d`: the same geometry as
/// the shader, in f32. `None` where the layer does not cover the direction.
pub fn layer_uv(push: &[f32; 28], d: glam::Vec3) -> Option<glam::Vec2> {
    layer_uv_face(push, d).map(|(uv, _)| uv)
}

/// [`layer_uv`] and the array layer offset (a cube's face; 0 for the other kinds).
pub fn layer_uv_face(push: &[f32; 28], d: glam::Vec3) -> Option<(glam::Vec2, u32)> {
    use glam::{Vec2, Vec3};
    let row = |k: usize| Vec3::new(push[4 + 4 * k], push[5 + 4 * k], push[6 + 4 * k]);
    let r = Vec3::new(row(0).dot(d), row(1).dot(d), row(2).dot(d));
    let o = Vec3::new(push[16], push[17], push[18]);
    let size = [push[24], push[25], push[26], push[27]];
    // Where a ray leaves the sphere (or the cylinder around Y) from the inside.
    let exit = |cyl: bool| {
        let (oo, dd) = if cyl {
            (Vec3::new(o.x, 0.0, o.z), Vec3::new(r.x, 0.0, r.z))
        } else {
            (o, r)
        };
        let (a, b, c) = (dd.dot(dd), 2.0 * oo.dot(dd), oo.dot(oo) - size[0] * size[0]);
        let disc = b * b - 4.0 * a * c;
        (a >= 1e-12 && disc >= 0.0).then(|| (-b + disc.sqrt()) / (2.0 * a))
    };
    let mut face = 0;
    let uv = match push[7] as u32 {
        5 => {
            let a = r.abs();
            let (sc, tc, ma);
            if a.x >= a.y && a.x >= a.z {
                (ma, tc) = (a.x, -r.y);
                (face, sc) = if r.x > 0.0 { (0, -r.z) } else { (1, r.z) };
            } else if a.y >= a.z {
                (ma, sc) = (a.y, r.x);
                (face, tc) = if r.y > 0.0 { (2, r.z) } else { (3, -r.z) };
            } else {
                (ma, tc) = (a.z, -r.y);
                (face, sc) = if r.z > 0.0 { (4, r.x) } else { (5, -r.x) };
            }
            Vec2::new(0.5 * (sc / ma + 1.0), 0.5 * (tc / ma + 1.0))
        }
        0 => {
            if r.z >= -1e-6 {
                return None;
            }
            let p = Vec2::new(r.x, r.y) / -r.z;
            Vec2::new(
                (p.x - push[16]) / (push[17] - push[16]),
                (push[18] - p.y) / (push[18] - push[19]),
            )
        }
        1 => {
            if r.z.abs() <= 1e-6 {
                return None;
            }
            let t = -o.z / r.z;
            if t <= 0.0 {
                return None;
            }
            let hit = Vec2::new(o.x, o.y) + t * Vec2::new(r.x, r.y);
            Vec2::new(hit.x / (2.0 * size[0]) + 0.5, 0.5 - hit.y / (2.0 * size[1]))
        }
        2 => {
            let t = exit(true).filter(|t| *t > 0.0)?;
            let p = o + t * r;
            let height = size[0] * size[1] / size[2];
            Vec2::new(p.x.atan2(-p.z) / size[1] + 0.5, 0.5 - p.y / height)
        }
        k => {
            let t = exit(false).filter(|t| *t > 0.0)?;
            let p = (o + t * r).normalize();
            let lon = p.x.atan2(-p.z);
            let lat = p.y.clamp(-1.0, 1.0).asin();
            if k == 3 {
                Vec2::new(lon / size[1] + 0.5, (size[2] - lat) / (size[2] - size[3]))
            } else {
                let whole = Vec2::new(
                    lon / std::f32::consts::TAU + 0.5,
                    0.5 - lat / std::f32::consts::PI,
                );
                whole * Vec2::new(size[1], size[2]) + Vec2::new(size[3], push[19])
            }
        }
    };
    ((0.0..=1.0).contains(&uv.x) && (0.0..=1.0).contains(&uv.y)).then_some((uv, face))
}

/// A whole panel (`panel_w` x `panel_h`, one eye per half) as the compositor's one pass
/// makes it: every panel pixel inside the lens's valid radius sends red, green and blue
/// through the lens to their own positions in the eye's field of view; each channel
/// composes that eye's draws there, back to front, sampled bilinearly in linear light
/// and blended premultiplied; stored as sRGB. Black outside the valid radius and outside
/// the eye's field of view. `images(id, layer)` gives an array layer of a draw's image.
pub fn compose_panel(
    lens: &LensModel,
    draws: [&[super::LayerDraw]; 2],
    images: &dyn Fn(u64, u32) -> Option<RgbaImage>,
    panel_w: u32,
    panel_h: u32,
) -> RgbaImage {
    // Each draw's array layers (a cube's six faces; one for the other kinds).
    let loaded: [Vec<Vec<Option<RgbaImage>>>; 2] = draws.map(|eye| {
        eye.iter()
            .map(|d| {
                let faces = if d.push[7] as u32 == 5 { 6 } else { 1 };
                (0..faces)
                    .map(|f| images(d.image, d.push[15] as u32 + f))
                    .collect()
            })
            .collect()
    });
    through_lens(lens, panel_w, panel_h, |eye, ch, e| {
        let mut acc = 0f32;
        for (draw, faces) in draws[eye].iter().zip(&loaded[eye]) {
            let p = &draw.push;
            let d = glam::Vec3::new(p[0] + (p[1] - p[0]) * e.x, p[2] + (p[3] - p[2]) * e.y, -1.0);
            let Some((luv, face)) = layer_uv_face(p, d) else {
                continue;
            };
            let Some(img) = faces.get(face as usize).and_then(|f| f.as_ref()) else {
                continue;
            };
            let (s, t) = (
                p[20] + (p[22] - p[20]) * luv.x,
                p[21] + (p[23] - p[21]) * luv.y,
            );
            let flags = p[11] as u32;
            let mut value = sample_linear(img, ch, s, t);
            let alpha = if flags & 1 == 0 {
                1.0
            } else {
                sample_alpha(img, s, t)
            };
            if flags & 2 != 0 {
                value *= alpha;
            }
            acc = value + acc * (1.0 - alpha);
        }
        linear_to_srgb(acc)
    })
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
