//! XR_KHR_visibility_mask: which part of each eye's image the lens lets the user see,
//! from the headset's lens model.
//!
//! The compositor samples the eye's image at `lens.sample(eye, u, v)` for each panel
//! point (u, v) inside the lens's valid radius; the rest of the image is never shown.
//! The mask is built in the view's tangent plane (x = tan of the horizontal angle, y = tan
//! of the vertical one, y up), as the extension defines it: rays from the view axis
//! (the origin), each cut where the image stops being visible (found by inverting the
//! lens mapping along the ray), give a counter-clockwise line loop; the visible mesh is
//! a fan from the origin to the loop, the hidden mesh fills the rest of the field of view.

use glam::Vec2;
use leasehold_drivers::api::{Fov, LensModel};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskType {
    HiddenTriangles,
    VisibleTriangles,
    LineLoop,
}

/// A mask: vertices in the tangent plane and indices into them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mask {
    pub vertices: Vec<Vec2>,
    pub indices: Vec<u32>,
}

/// Rays around the view axis (the field of view's four corners are added to them).
const RAYS: usize = 64;

/// The eye's field of view as a rectangle in the tangent plane.
struct Frame {
    min: Vec2,
    max: Vec2,
}

impl Frame {
    fn of(fov: &Fov) -> Frame {
        Frame {
            min: Vec2::new(fov.angle_left.tan(), fov.angle_down.tan()),
            max: Vec2::new(fov.angle_right.tan(), fov.angle_up.tan()),
        }
    }

    /// Image coordinates (u right, v down, both 0..1) of a tangent-plane point.
    fn to_image(&self, t: Vec2) -> Vec2 {
        Vec2::new(
            (t.x - self.min.x) / (self.max.x - self.min.x),
            (self.max.y - t.y) / (self.max.y - self.min.y),
        )
    }

    /// How far along direction `d` from the origin the rectangle's edge is.
    fn edge(&self, d: Vec2) -> f32 {
        let along = |lo: f32, hi: f32, c: f32| {
            if c > 0.0 {
                hi / c
            } else if c < 0.0 {
                lo / c
            } else {
                f32::INFINITY
            }
        };
        along(self.min.x, self.max.x, d.x).min(along(self.min.y, self.max.y, d.y))
    }
}

/// Whether the image point `q` is shown on the panel: some panel point inside the lens's
/// valid radius samples it (found by Newton's method on the lens mapping).
fn shown(lens: &LensModel, eye: usize, q: Vec2) -> bool {
    let f = |p: Vec2| lens.sample(eye, p.x, p.y).0[1];
    let mut p = q;
    for _ in 0..24 {
        let r = f(p) - q;
        if r.length() < 1e-6 {
            break;
        }
        const H: f32 = 1e-3;
        let jx = (f(p + Vec2::new(H, 0.0)) - f(p)) / H;
        let jy = (f(p + Vec2::new(0.0, H)) - f(p)) / H;
        let det = jx.x * jy.y - jy.x * jx.y;
        if det.abs() < 1e-9 || !det.is_finite() {
            return false;
        }
        p -= Vec2::new(jy.y * r.x - jy.x * r.y, -jx.y * r.x + jx.x * r.y) / det;
    }
    // The panel's edge itself counts (the inversion lands on it within rounding).
    const EDGE: f32 = 1e-4;
    let inside_panel = (-EDGE..=1.0 + EDGE).contains(&p.x) && (-EDGE..=1.0 + EDGE).contains(&p.y);
    inside_panel && (f(p) - q).length() < 1e-4 && lens.sample(eye, p.x, p.y).1
}

/// The visible outline, counter-clockwise around the origin, each point on a ray from
/// it; with the rectangle's edge point on the same ray.
fn outline(lens: &LensModel, eye: usize, fov: &Fov) -> Vec<(Vec2, Vec2)> {
    let frame = Frame::of(fov);
    let mut angles: Vec<f32> = (0..RAYS)
        .map(|i| i as f32 / RAYS as f32 * std::f32::consts::TAU)
        .collect();
    for c in [
        frame.min,
        frame.max,
        Vec2::new(frame.min.x, frame.max.y),
        Vec2::new(frame.max.x, frame.min.y),
    ] {
        angles.push(c.y.atan2(c.x).rem_euclid(std::f32::consts::TAU));
    }
    angles.sort_by(f32::total_cmp);
    angles.dedup_by(|a, b| (*a - *b).abs() < 1e-6);
    angles
        .into_iter()
        .map(|a| {
            let d = Vec2::new(a.cos(), a.sin());
            let edge = frame.edge(d);
            let visible = |r: f32| shown(lens, eye, frame.to_image(d * r));
            // The outermost visible radius along the ray (visibility shrinks outwards).
            let r = if visible(edge) {
                edge
            } else {
                let (mut lo, mut hi) = (0.0f32, edge);
                for _ in 0..24 {
                    let mid = 0.5 * (lo + hi);
                    if visible(mid) { lo = mid } else { hi = mid }
                }
                lo
            };
            (d * r, d * edge)
        })
        .collect()
}

fn ccw(a: Vec2, b: Vec2, c: Vec2) -> f32 {
    (b - a).perp_dot(c - a)
}

/// The mask of `eye` (0 left, 1 right) for a headset with `lens` and the eye's `fov`.
pub fn mask(lens: &LensModel, eye: usize, fov: &Fov, kind: MaskType) -> Mask {
    let ring = outline(lens, eye, fov);
    let n = ring.len() as u32;
    let mut m = Mask::default();
    match kind {
        MaskType::LineLoop => {
            m.vertices = ring.iter().map(|(a, _)| *a).collect();
            m.indices = (0..n).collect();
        }
        MaskType::VisibleTriangles => {
            m.vertices.push(Vec2::ZERO);
            m.vertices.extend(ring.iter().map(|(a, _)| *a));
            for i in 0..n {
                m.indices.extend([0, 1 + i, 1 + (i + 1) % n]);
            }
        }
        MaskType::HiddenTriangles => {
            // Between the outline and the field of view's edge, one quad per ray pair;
            // triangles without area (where the lens shows the whole ray) are left out.
            for (a, b) in &ring {
                m.vertices.extend([*a, *b]);
            }
            for i in 0..n {
                let j = (i + 1) % n;
                let (ai, bi, aj, bj) = (2 * i, 2 * i + 1, 2 * j, 2 * j + 1);
                for [x, y, z] in [[ai, bi, bj], [ai, bj, aj]] {
                    let v = |k: u32| m.vertices[k as usize];
                    let area = ccw(v(x), v(y), v(z));
                    if area > 1e-9 {
                        m.indices.extend([x, y, z]);
                    } else if area < -1e-9 {
                        m.indices.extend([x, z, y]);
                    }
                }
            }
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use leasehold_drivers::api::Hmd;

    fn headset() -> (LensModel, [Fov; 2]) {
        let h = leasehold_drivers::simulated::SimulatedHmd::looking_around(0);
        let d = h.display();
        (h.lens(), [d.eyes[0].fov, d.eyes[1].fov])
    }

    fn area(poly: &[Vec2]) -> f32 {
        (0..poly.len())
            .map(|i| poly[i].perp_dot(poly[(i + 1) % poly.len()]))
            .sum::<f32>()
            / 2.0
    }

    fn tri_area(m: &Mask) -> f32 {
        m.indices
            .chunks(3)
            .map(|t| {
                let v = |k: u32| m.vertices[k as usize];
                ccw(v(t[0]), v(t[1]), v(t[2])) / 2.0
            })
            .sum()
    }

    #[test]
    fn the_masks_partition_the_field_of_view_counter_clockwise() {
        let (lens, fovs) = headset();
        for (eye, fov) in fovs.iter().enumerate() {
            let f = Frame::of(fov);
            let whole = (f.max.x - f.min.x) * (f.max.y - f.min.y);
            let lp = mask(&lens, eye, fov, MaskType::LineLoop);
            assert_eq!(lp.indices.len(), lp.vertices.len());
            for i in 0..lp.vertices.len() {
                let (a, b) = (lp.vertices[i], lp.vertices[(i + 1) % lp.vertices.len()]);
                assert!(a.perp_dot(b) >= 0.0, "loop turns counter-clockwise at {i}");
            }
            let visible = mask(&lens, eye, fov, MaskType::VisibleTriangles);
            let hidden = mask(&lens, eye, fov, MaskType::HiddenTriangles);
            for m in [&visible, &hidden] {
                assert_eq!(m.indices.len() % 3, 0);
                assert!(m.indices.iter().all(|&i| (i as usize) < m.vertices.len()));
                for t in m.indices.chunks(3) {
                    let v = |k: u32| m.vertices[k as usize];
                    assert!(ccw(v(t[0]), v(t[1]), v(t[2])) >= 0.0, "counter-clockwise");
                }
            }
            let (va, ha) = (tri_area(&visible), tri_area(&hidden));
            assert!((area(&lp.vertices) - va).abs() < 1e-4 * whole);
            assert!(
                (va + ha - whole).abs() < 0.01 * whole,
                "visible {va} + hidden {ha} cover the field of view {whole}"
            );
            // A Vive-class lens hides the image's corners, and shows most of it.
            assert!(
                ha > 0.02 * whole && va > 0.5 * whole,
                "eye {eye}: {va} / {ha}"
            );
            // Points of the outline are shown; a little further out they are not.
            for (a, _) in outline(&lens, eye, fov).iter().step_by(7) {
                if a.length() > 1e-3 {
                    assert!(shown(&lens, eye, f.to_image(*a * 0.99)));
                }
            }
        }
    }

    #[test]
    fn without_a_lens_the_whole_field_of_view_is_visible() {
        let (_, fovs) = headset();
        let hidden = mask(&LensModel::None, 0, &fovs[0], MaskType::HiddenTriangles);
        assert!(hidden.indices.is_empty(), "{hidden:?}");
        let f = Frame::of(&fovs[0]);
        let visible = mask(&LensModel::None, 0, &fovs[0], MaskType::VisibleTriangles);
        let whole = (f.max.x - f.min.x) * (f.max.y - f.min.y);
        assert!((tri_area(&visible) - whole).abs() < 1e-4 * whole);
    }
}
