//! The lens mesh: a grid over each eye's half of the panel whose vertices carry where in
//! the eye's field of view red, green and blue look, and the lens-centred position used
//! for the valid-radius test. The compositor bounds layers with it on the CPU
//! ([`Mesh::panel_rect`]) and draws a coarse one on the GPU (cells wholly beyond the
//! valid radius left out); the pass itself evaluates the lens per pixel.

use leasehold_drivers::api::LensModel;

/// One vertex: where on the panel, and where the lens sends each channel from there.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MeshVertex {
    /// Position in the eye's viewport, Vulkan NDC (−1..1, y down): what the compositor's
    /// fragment path draws.
    pub pos: [f32; 2],
    pub uv_r: [f32; 2],
    pub uv_g: [f32; 2],
    pub uv_b: [f32; 2],
    /// Green channel's lens-centred offset (r² = |p|² is tested against the cutoff).
    pub p: [f32; 2],
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mesh {
    pub vertices: Vec<MeshVertex>,
    pub indices: Vec<u32>,
    /// Index range of each eye: (first index, count); vertices are shared by offset.
    pub eye_indices: [(u32, u32); 2],
    /// Cells per eye: columns, rows.
    pub grid: (u32, u32),
    /// The largest difference of a channel's eye-image position between two corners of
    /// one cell, along either axis.
    pub cell_reach: f32,
}

impl Mesh {
    /// The part of an eye's half of the panel (0..1 across: x0, y0, x1, y1) where any
    /// channel can look into `bounds` (eye-image positions, the same order); empty
    /// (x0 >= x1) when none can.
    ///
    /// A pixel looks where the lens sends it: its cell's corners' positions interpolated,
    /// so within `cell_reach` of each corner's. Every corner within `cell_reach` of
    /// `bounds` is found; the pixel lies within one cell of such a corner.
    pub fn panel_rect(&self, eye: usize, bounds: [f32; 4]) -> [f32; 4] {
        let (cols, rows) = self.grid;
        let n = ((cols + 1) * (rows + 1)) as usize;
        let m = self.cell_reach;
        let inside = |p: &[f32; 2]| {
            p[0] >= bounds[0] - m
                && p[1] >= bounds[1] - m
                && p[0] <= bounds[2] + m
                && p[1] <= bounds[3] + m
        };
        let mut r = [
            f32::INFINITY,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
        ];
        for v in self.vertices.iter().skip(eye.min(1) * n).take(n) {
            if inside(&v.uv_r) || inside(&v.uv_g) || inside(&v.uv_b) {
                let (x, y) = ((v.pos[0] + 1.0) / 2.0, (v.pos[1] + 1.0) / 2.0);
                r = [r[0].min(x), r[1].min(y), r[2].max(x), r[3].max(y)];
            }
        }
        if r[0] > r[2] {
            return [0.0; 4];
        }
        let (cx, cy) = (1.0 / cols as f32, 1.0 / rows as f32);
        [
            (r[0] - cx).max(0.0),
            (r[1] - cy).max(0.0),
            (r[2] + cx).min(1.0),
            (r[3] + cy).min(1.0),
        ]
    }
}

/// Builds the mesh with `cols` × `rows` cells per eye; cells wholly outside the lens
/// model's valid radius are left out (the panel is black there).
pub fn build(lens: &LensModel, cols: u32, rows: u32) -> Mesh {
    let (cols, rows) = (cols.max(1), rows.max(1));
    let mut vertices = Vec::with_capacity(2 * ((cols + 1) * (rows + 1)) as usize);
    let mut indices = Vec::with_capacity(2 * (cols * rows * 6) as usize);
    let mut eye_indices = [(0, 0); 2];
    let mut cutoff = [f32::INFINITY; 2];
    for eye in 0..2usize {
        let base = vertices.len() as u32;
        if let LensModel::Polynomial(l) = lens {
            cutoff[eye] = l[eye].undistort_r2_cutoff;
        }
        for j in 0..=rows {
            for i in 0..=cols {
                let (u, v) = (i as f32 / cols as f32, j as f32 / rows as f32);
                let (uv, _) = lens.sample(eye, u, v);
                let p = match lens {
                    LensModel::Polynomial(l) => l[eye].offset(&l[eye].channels[1], u, v),
                    LensModel::None => glam::Vec2::ZERO,
                };
                vertices.push(MeshVertex {
                    pos: [2.0 * u - 1.0, 2.0 * v - 1.0],
                    uv_r: uv[0].to_array(),
                    uv_g: uv[1].to_array(),
                    uv_b: uv[2].to_array(),
                    p: p.to_array(),
                });
            }
        }
        let first = indices.len() as u32;
        let at = |i: u32, j: u32| base + j * (cols + 1) + i;
        for j in 0..rows {
            for i in 0..cols {
                // A cell wholly beyond the valid radius would only be drawn black: left
                // out. `p` is linear in panel position, so the cell is a rectangle in
                // p-space, and its point nearest the lens centre decides.
                let corners = [at(i, j), at(i + 1, j + 1)].map(|k| vertices[k as usize].p);
                let nearest = |a: f32, b: f32| {
                    if a * b <= 0.0 {
                        0.0
                    } else {
                        a.abs().min(b.abs())
                    }
                };
                let near = glam::Vec2::new(
                    nearest(corners[0][0], corners[1][0]),
                    nearest(corners[0][1], corners[1][1]),
                );
                if near.length_squared() > cutoff[eye] {
                    continue;
                }
                indices.extend([at(i, j), at(i + 1, j), at(i, j + 1)]);
                indices.extend([at(i + 1, j), at(i + 1, j + 1), at(i, j + 1)]);
            }
        }
        eye_indices[eye] = (first, indices.len() as u32 - first);
    }
    let row = (cols + 1) as usize;
    let mut cell_reach = 0f32;
    for (k, v) in vertices.iter().enumerate() {
        let (i, j) = (k % row, (k / row) % (rows as usize + 1));
        for (di, dj) in [(1, 0), (0, 1), (1, 1)] {
            if i + di > cols as usize || j + dj > rows as usize {
                continue;
            }
            let w = &vertices[k + di + dj * row];
            for (a, b) in [(v.uv_r, w.uv_r), (v.uv_g, w.uv_g), (v.uv_b, w.uv_b)] {
                cell_reach = cell_reach.max((a[0] - b[0]).abs()).max((a[1] - b[1]).abs());
            }
        }
    }
    Mesh {
        vertices,
        indices,
        eye_indices,
        grid: (cols, rows),
        cell_reach,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_covers_each_eye_and_identity_lens_is_identity() {
        let m = build(&LensModel::None, 4, 2);
        assert_eq!(m.vertices.len(), 2 * 5 * 3);
        assert_eq!(m.indices.len(), 2 * 4 * 2 * 6);
        assert_eq!(m.eye_indices[1], (48, 48));
        let v = m.vertices[5 * 3 - 1]; // left eye, bottom-right corner
        assert_eq!(v.pos, [1.0, 1.0]);
        assert_eq!(v.uv_g, [1.0, 1.0]);
        assert!(m.indices.iter().all(|&i| (i as usize) < m.vertices.len()));
    }

    #[test]
    fn panel_rect_holds_every_pixel_that_looks_into_the_bounds() {
        use leasehold_drivers::simulated::SIMULATED_CONFIG;
        use leasehold_drivers::vive::config::ViveConfig;
        let cfg = ViveConfig::parse(SIMULATED_CONFIG).unwrap();
        let (_, lens) = leasehold_drivers::vive::display_for(&cfg, None);
        let m = build(&lens, 24, 30);
        for bounds in [
            [0.45, 0.4, 0.5, 0.47],
            [0.0, 0.0, 0.2, 0.1],
            [0.7, 0.8, 1.0, 1.0],
        ] {
            for eye in 0..2 {
                let r = m.panel_rect(eye, bounds);
                let area = (r[2] - r[0]) * (r[3] - r[1]);
                let mut seen = 0;
                for y in 0..300 {
                    for x in 0..300 {
                        let (u, v) = ((x as f32 + 0.5) / 300.0, (y as f32 + 0.5) / 300.0);
                        let (uv, inside) = lens.sample(eye, u, v);
                        let looks = uv.iter().any(|p| {
                            p.x >= bounds[0]
                                && p.y >= bounds[1]
                                && p.x <= bounds[2]
                                && p.y <= bounds[3]
                        });
                        if inside && looks {
                            seen += 1;
                            assert!(
                                u >= r[0] && u <= r[2] && v >= r[1] && v <= r[3],
                                "eye {eye}: ({u}, {v}) looks into {bounds:?} but lies outside {r:?}"
                            );
                        }
                    }
                }
                if bounds[0] > 0.4 {
                    assert!(seen > 0);
                    assert!(area < 0.1, "a small box stays small on the panel: {r:?}");
                }
            }
        }
    }

    #[test]
    fn cells_beyond_the_valid_radius_are_left_out_and_the_rest_kept() {
        use leasehold_drivers::simulated::SIMULATED_CONFIG;
        use leasehold_drivers::vive::config::ViveConfig;
        let cfg = ViveConfig::parse(SIMULATED_CONFIG).unwrap();
        let (_, lens) = leasehold_drivers::vive::display_for(&cfg, None);
        let (cols, rows) = (40, 40);
        let m = build(&lens, cols, rows);
        let kept = m.eye_indices[0].1 / 6;
        assert!(kept < cols * rows, "some cells are culled: {kept}");
        // Every panel point inside the valid radius lies in a kept cell.
        let cells: std::collections::HashSet<(u32, u32)> = m.indices
            [m.eye_indices[0].0 as usize..(m.eye_indices[0].0 + m.eye_indices[0].1) as usize]
            .chunks(6)
            .map(|t| {
                let v = t[0] % ((cols + 1) * (rows + 1));
                (v % (cols + 1), v / (cols + 1))
            })
            .collect();
        for y in 0..200 {
            for x in 0..200 {
                let (u, v) = ((x as f32 + 0.5) / 200.0, (y as f32 + 0.5) / 200.0);
                if lens.sample(0, u, v).1 {
                    let cell = ((u * cols as f32) as u32, (v * rows as f32) as u32);
                    assert!(
                        cells.contains(&cell),
                        "({u}, {v}) is inside but its cell is gone"
                    );
                }
            }
        }
    }
}
