//! What the compositor draws, decided on the CPU: layer validation, rotational timewarp,
//! the per-layer draw parameters, and the lens-distortion mesh. The GPU side
//! (`vk::renderer`) executes the plan; the CPU reference (`reference`) renders the same
//! model without a GPU for tests.
//!
//! A frame is one pass over the panel: the distortion mesh covers each eye's half, and
//! every panel pixel sends red, green and blue through the lens model to their own
//! positions in the eye's field of view (chromatic aberration correction). There each
//! channel's view direction at the *predicted display pose* is rotated into the space
//! each layer was rendered in (projection layers: the app's render pose; that rotation is
//! the timewarp) or intersected with the layer's surface (quads, cylinders, spheres,
//! cubes), and the layer's sub-image is sampled directly. One draw per layer, back to
//! front, premultiplied, blended per channel; no intermediate image.

pub mod mesh;
pub mod pattern;
pub mod reference;

use glam::{Quat, Vec2, Vec3};
use leasehold_drivers::api::{DisplayInfo, Fov, Pose};

/// Image formats layers may use (what the compositor can sample; the runtime offers
/// exactly these as swapchain formats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColorFormat {
    Rgba8Srgb,
    Bgra8Srgb,
    Rgba8Unorm,
    Bgra8Unorm,
    Rgba16Float,
}

/// A layer image the compositor can sample, as the plan sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageDesc {
    pub id: u64,
    pub width: u32,
    pub height: u32,
    pub array_layers: u32,
    /// `None`: a format the compositor cannot sample (the layer is rejected).
    pub format: Option<ColorFormat>,
}

/// A rectangle of an image, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubImage {
    pub image: u64,
    pub x: i32,
    pub y: i32,
    pub width: i32,
    pub height: i32,
    pub array_index: u32,
}

/// Layer flags (OpenXR's XrCompositionLayerFlags meanings).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerFlags {
    /// Use the texture's alpha; without it the layer is opaque.
    pub blend_texture_source_alpha: bool,
    /// The texture's colour is not premultiplied by its alpha.
    pub unpremultiplied_alpha: bool,
}

impl LayerFlags {
    /// [`Self::blend_texture_source_alpha`] in the bits the pass reads (`LayerDraw::push`).
    pub const SOURCE_ALPHA_BIT: u32 = 1;

    fn bits(&self) -> u32 {
        (u32::from(self.blend_texture_source_alpha) * Self::SOURCE_ALPHA_BIT)
            | (u32::from(self.unpremultiplied_alpha) << 1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProjectionView {
    /// The pose the app rendered this view from (in the layer's space = world here).
    pub pose: Pose,
    pub fov: Fov,
    pub sub_image: SubImage,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Layer {
    Projection {
        views: [ProjectionView; 2],
        flags: LayerFlags,
    },
    Quad {
        /// Which eyes see it: [left, right].
        eyes: [bool; 2],
        sub_image: SubImage,
        /// Centre and orientation of the quad; it faces +Z of its pose.
        pose: Pose,
        /// Width and height, metres.
        size: Vec2,
        flags: LayerFlags,
    },
    /// The inside of a cylinder around its pose's Y axis (XR_KHR_composition_layer_cylinder):
    /// the image covers `central_angle` of it, centred on the pose's -Z, and a height of
    /// `radius · central_angle / aspect_ratio` centred on the pose.
    Cylinder {
        eyes: [bool; 2],
        sub_image: SubImage,
        pose: Pose,
        /// Metres; 0 or infinity: infinitely far (only directions matter).
        radius: f32,
        central_angle: f32,
        aspect_ratio: f32,
        flags: LayerFlags,
    },
    /// The inside of a sphere around its pose, mapped equirectangularly
    /// (XR_KHR_composition_layer_equirect2): longitude across `central_horizontal_angle`
    /// centred on the pose's -Z, latitude from `upper_vertical_angle` (top row) down to
    /// `lower_vertical_angle` (bottom row).
    Equirect {
        eyes: [bool; 2],
        sub_image: SubImage,
        pose: Pose,
        /// Metres; 0 or infinity: infinitely far.
        radius: f32,
        central_horizontal_angle: f32,
        upper_vertical_angle: f32,
        lower_vertical_angle: f32,
        flags: LayerFlags,
    },
    /// The inside of a sphere around its pose (XR_KHR_composition_layer_equirect): the
    /// whole sphere maps to [0, 1]² (longitude from -π at u = 0 through the pose's -Z at
    /// 0.5; latitude from +π/2 at v = 0 to -π/2 at v = 1), then `uv · scale + bias`
    /// picks the place in the sub-image.
    EquirectScaleBias {
        eyes: [bool; 2],
        sub_image: SubImage,
        pose: Pose,
        /// Metres; 0 or infinity: infinitely far.
        radius: f32,
        scale: Vec2,
        bias: Vec2,
        flags: LayerFlags,
    },
    /// A cube map around the viewer, infinitely far (XR_KHR_composition_layer_cube):
    /// `sub_image` is the whole image with `array_index` the first of the cube's six
    /// faces (+X, -X, +Y, -Y, +Z, -Z, as Vulkan orders them).
    Cube {
        eyes: [bool; 2],
        sub_image: SubImage,
        orientation: Quat,
        flags: LayerFlags,
    },
}

impl Layer {
    /// The eyes that see the layer, the sub-image it shows to `eye`, and its flags.
    fn for_eye(&self, eye: usize) -> Option<(SubImage, LayerFlags)> {
        match self {
            Layer::Projection { views, flags } => Some((views[eye].sub_image, *flags)),
            Layer::Quad {
                eyes,
                sub_image,
                flags,
                ..
            }
            | Layer::Cylinder {
                eyes,
                sub_image,
                flags,
                ..
            }
            | Layer::Equirect {
                eyes,
                sub_image,
                flags,
                ..
            }
            | Layer::EquirectScaleBias {
                eyes,
                sub_image,
                flags,
                ..
            }
            | Layer::Cube {
                eyes,
                sub_image,
                flags,
                ..
            } => eyes[eye].then_some((*sub_image, *flags)),
        }
    }
}

/// Layer kinds as `shaders/panel.wgsl` numbers them.
pub mod kind {
    pub const PROJECTION: f32 = 0.0;
    pub const QUAD: f32 = 1.0;
    pub const CYLINDER: f32 = 2.0;
    pub const EQUIRECT: f32 = 3.0;
    pub const EQUIRECT_SCALE_BIAS: f32 = 4.0;
    pub const CUBE: f32 = 5.0;
}

/// One layer draw over an eye's half of the panel: the image to sample and the push
/// constants of `shaders/panel.wgsl` (its first 28 floats).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerDraw {
    pub image: u64,
    pub push: [f32; 28],
    /// Where in the eye's field of view the layer can show (eye-image positions, 0..1
    /// across: u0, v0, u1, v1); `None`: anywhere. The pass draws only the panel region
    /// the lens maps there.
    pub bounds: Option<[f32; 4]>,
}

/// Why a layer (or part of one) was not drawn as given.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub layer: usize,
    pub reason: String,
    /// Clamped and drawn anyway (`true`), or dropped.
    pub clamped: bool,
}

/// Everything the GPU needs for one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FramePlan {
    /// Per eye, back to front.
    pub draws: [Vec<LayerDraw>; 2],
    pub rejections: Vec<Rejection>,
    /// The eye poses the frame is composed for.
    pub eye_poses: [Pose; 2],
}

fn fov_tangents(f: &Fov) -> [f32; 4] {
    [
        f.angle_left.tan(),
        f.angle_right.tan(),
        f.angle_up.tan(),
        f.angle_down.tan(),
    ]
}

fn rows(m: glam::Mat3) -> [Vec3; 3] {
    let t = m.transpose();
    [t.x_axis, t.y_axis, t.z_axis]
}

fn sane_pose(p: &Pose) -> bool {
    p.is_finite() && (p.orientation.length() - 1.0).abs() < 1e-2
}

/// The sub-image clamped to its image; `Err` if nothing sensible remains.
fn clamp_sub_image(s: &SubImage, d: &ImageDesc) -> Result<(SubImage, bool), String> {
    if s.array_index >= d.array_layers {
        return Err(format!(
            "array index {} but the image has {} layers",
            s.array_index, d.array_layers
        ));
    }
    let x0 = s.x.clamp(0, d.width as i32);
    let y0 = s.y.clamp(0, d.height as i32);
    let x1 = s.x.saturating_add(s.width).clamp(0, d.width as i32);
    let y1 = s.y.saturating_add(s.height).clamp(0, d.height as i32);
    if x1 - x0 < 1 || y1 - y0 < 1 {
        return Err(format!(
            "sub-image {}x{}+{}+{} lies outside the {}x{} image",
            s.width, s.height, s.x, s.y, d.width, d.height
        ));
    }
    let c = SubImage {
        x: x0,
        y: y0,
        width: x1 - x0,
        height: y1 - y0,
        ..*s
    };
    Ok((c, c != *s))
}

fn rect(s: &SubImage, d: &ImageDesc) -> [f32; 4] {
    [
        s.x as f32 / d.width as f32,
        s.y as f32 / d.height as f32,
        (s.x + s.width) as f32 / d.width as f32,
        (s.y + s.height) as f32 / d.height as f32,
    ]
}

/// The rotation from the eye into a layer's space (push rows 4..15) and the eye's
/// position there (16..19; the layer's centre when `positional` is false, for layers
/// at infinity).
fn in_layer_space(push: &mut [f32; 28], pose: &Pose, eye_pose: &Pose, positional: bool) {
    let inv = pose.orientation.inverse();
    let m = glam::Mat3::from_quat(inv * eye_pose.orientation);
    for (k, row) in rows(m).iter().enumerate() {
        push[4 + 4 * k..7 + 4 * k].copy_from_slice(&row.to_array());
    }
    if positional {
        let eye = inv * (eye_pose.position - pose.position);
        push[16..19].copy_from_slice(&eye.to_array());
    }
}

/// A cylinder's or sphere's radius: non-negative (NaN is not); 0 and +infinity put the
/// layer infinitely far away.
pub fn valid_radius(r: f32) -> bool {
    r >= 0.0
}

/// Places a layer around the centre `pose` at `radius` (a valid one): the eye in its
/// space, at the centre for a layer infinitely far (only directions matter), and the
/// radius (1 for those) in push 24.
fn around(push: &mut [f32; 28], pose: &Pose, eye_pose: &Pose, radius: f32) {
    let finite = radius.is_finite() && radius > 0.0;
    in_layer_space(push, pose, eye_pose, finite);
    push[24] = if finite { radius } else { 1.0 };
}

/// Where in the eye's field of view (tangents `tan`: left, right, up, down) a quad can
/// show, as eye-image positions (0..1 across): the bounding box of its corners'
/// projections (a flat convex quad projects into their hull), clipped to the field and
/// empty (u0 >= u1 or v0 >= v1) when it lies outside or wholly behind the eye. `None`
/// when only some corners are in front of the eye: then no box bounds it.
fn quad_bounds(pose: &Pose, size: glam::Vec2, eye_pose: &Pose, tan: [f32; 4]) -> Option<[f32; 4]> {
    let to_eye = eye_pose.orientation.inverse();
    let mut b = [
        f32::INFINITY,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NEG_INFINITY,
    ];
    let corners = [(-0.5, -0.5), (0.5, -0.5), (-0.5, 0.5), (0.5, 0.5)].map(|(sx, sy)| {
        let corner = pose.position + pose.orientation * Vec3::new(sx * size.x, sy * size.y, 0.0);
        to_eye * (corner - eye_pose.position)
    });
    let in_front = corners.iter().filter(|e| e.z <= -1e-4).count();
    if in_front == 0 {
        return Some([1.0, 1.0, 0.0, 0.0]);
    }
    if in_front < 4 {
        return None;
    }
    for e in corners {
        let u = (e.x / -e.z - tan[0]) / (tan[1] - tan[0]);
        let v = (e.y / -e.z - tan[2]) / (tan[3] - tan[2]);
        b = [b[0].min(u), b[1].min(v), b[2].max(u), b[3].max(v)];
    }
    Some([b[0].max(0.0), b[1].max(0.0), b[2].min(1.0), b[3].min(1.0)])
}

/// Plans a frame: `head` is the predicted head pose at the frame's display time.
/// Invalid input never fails the frame: a layer is clamped (and drawn) or dropped, and
/// each case is reported in `rejections` (the frame loop logs them).
pub fn plan(
    display: &DisplayInfo,
    head: Pose,
    layers: &[Layer],
    images: &dyn Fn(u64) -> Option<ImageDesc>,
) -> FramePlan {
    let mut rejections = Vec::new();
    let head = if sane_pose(&head) {
        head
    } else {
        rejections.push(Rejection {
            layer: usize::MAX,
            reason: "display pose is not finite: composing without timewarp".into(),
            clamped: true,
        });
        Pose::IDENTITY
    };
    let eye_poses = [0, 1].map(|e| head.compose(&display.eyes[e].eye_to_head));
    let mut draws: [Vec<LayerDraw>; 2] = Default::default();
    for (li, layer) in layers.iter().enumerate() {
        let mut reject = |reason: String, clamped: bool| {
            rejections.push(Rejection {
                layer: li,
                reason,
                clamped,
            })
        };
        for eye in 0..2 {
            let eye_pose = eye_poses[eye];
            let Some((sub, flags)) = layer.for_eye(eye) else {
                continue;
            };
            let Some(desc) = images(sub.image) else {
                reject(format!("image {} does not exist", sub.image), false);
                continue;
            };
            if desc.format.is_none() {
                reject(
                    format!(
                        "image {} has a format the compositor cannot sample",
                        sub.image
                    ),
                    false,
                );
                continue;
            }
            let sub = match clamp_sub_image(&sub, &desc) {
                Ok((s, changed)) => {
                    if changed {
                        reject(
                            format!(
                                "sub-image clamped to the {}x{} image",
                                desc.width, desc.height
                            ),
                            true,
                        );
                    }
                    s
                }
                Err(why) => {
                    reject(why, false);
                    continue;
                }
            };
            let mut push = [0f32; 28];
            let tan = fov_tangents(&display.eyes[eye].fov);
            push[0..4].copy_from_slice(&tan);
            let mut bounds = None;
            let kind;
            match layer {
                Layer::Projection { views, .. } => {
                    kind = self::kind::PROJECTION;
                    let v = &views[eye];
                    let (pose, fov) = if sane_pose(&v.pose) && v.fov.is_valid() {
                        (v.pose, v.fov)
                    } else {
                        reject(
                            "view pose or field of view is not valid: drawn without timewarp"
                                .into(),
                            true,
                        );
                        (
                            eye_pose,
                            if v.fov.is_valid() {
                                v.fov
                            } else {
                                display.eyes[eye].fov
                            },
                        )
                    };
                    let m =
                        glam::Mat3::from_quat(pose.orientation.inverse() * eye_pose.orientation);
                    let r = rows(m);
                    for (k, row) in r.iter().enumerate() {
                        push[4 + 4 * k..7 + 4 * k].copy_from_slice(&row.to_array());
                    }
                    push[16..20].copy_from_slice(&fov_tangents(&fov));
                }
                Layer::Quad { pose, size, .. } => {
                    kind = self::kind::QUAD;
                    if !sane_pose(pose) || !size.is_finite() || size.min_element() <= 0.0 {
                        reject("quad pose or size is not valid: dropped".into(), false);
                        continue;
                    }
                    in_layer_space(&mut push, pose, &eye_pose, true);
                    push[24] = size.x / 2.0;
                    push[25] = size.y / 2.0;
                    bounds = quad_bounds(pose, *size, &eye_pose, tan);
                    if bounds.is_some_and(|b| b[0] >= b[2] || b[1] >= b[3]) {
                        // Outside this eye's field of view: nothing to draw.
                        continue;
                    }
                }
                Layer::Cylinder {
                    pose,
                    radius,
                    central_angle,
                    aspect_ratio,
                    ..
                } => {
                    kind = self::kind::CYLINDER;
                    let angle_ok = *central_angle > 0.0 && *central_angle <= std::f32::consts::TAU;
                    if !sane_pose(pose)
                        || !valid_radius(*radius)
                        || !angle_ok
                        || !aspect_ratio.is_finite()
                        || *aspect_ratio <= 0.0
                    {
                        reject("cylinder pose or shape is not valid: dropped".into(), false);
                        continue;
                    }
                    around(&mut push, pose, &eye_pose, *radius);
                    push[25] = *central_angle;
                    push[26] = *aspect_ratio;
                }
                Layer::Equirect {
                    pose,
                    radius,
                    central_horizontal_angle: h,
                    upper_vertical_angle: up,
                    lower_vertical_angle: down,
                    ..
                } => {
                    kind = self::kind::EQUIRECT;
                    let half_pi = std::f32::consts::FRAC_PI_2;
                    let valid = sane_pose(pose)
                        && valid_radius(*radius)
                        && *h > 0.0
                        && *h <= std::f32::consts::TAU
                        && (-half_pi..=half_pi).contains(up)
                        && (-half_pi..=half_pi).contains(down)
                        && up > down;
                    if !valid {
                        reject(
                            "equirect pose or angles are not valid: dropped".into(),
                            false,
                        );
                        continue;
                    }
                    around(&mut push, pose, &eye_pose, *radius);
                    push[25] = *h;
                    push[26] = *up;
                    push[27] = *down;
                }
                Layer::EquirectScaleBias {
                    pose,
                    radius,
                    scale,
                    bias,
                    ..
                } => {
                    kind = self::kind::EQUIRECT_SCALE_BIAS;
                    if !sane_pose(pose)
                        || !valid_radius(*radius)
                        || !scale.is_finite()
                        || !bias.is_finite()
                    {
                        reject(
                            "equirect pose, scale or bias is not valid: dropped".into(),
                            false,
                        );
                        continue;
                    }
                    around(&mut push, pose, &eye_pose, *radius);
                    push[25] = scale.x;
                    push[26] = scale.y;
                    push[27] = bias.x;
                    push[19] = bias.y;
                }
                Layer::Cube { orientation, .. } => {
                    kind = self::kind::CUBE;
                    let pose = Pose {
                        orientation: *orientation,
                        position: Vec3::ZERO,
                    };
                    if !sane_pose(&pose) {
                        reject("cube orientation is not valid: dropped".into(), false);
                        continue;
                    }
                    if sub.array_index + 6 > desc.array_layers {
                        reject(
                            format!(
                                "cube faces {}..{} but the image has {} layers",
                                sub.array_index,
                                sub.array_index + 6,
                                desc.array_layers
                            ),
                            false,
                        );
                        continue;
                    }
                    in_layer_space(&mut push, &pose, &eye_pose, false);
                }
            }
            push[7] = kind;
            push[11] = flags.bits() as f32;
            push[15] = sub.array_index as f32;
            push[20..24].copy_from_slice(&rect(&sub, &desc));
            draws[eye].push(LayerDraw {
                image: sub.image,
                push,
                bounds,
            });
        }
    }
    FramePlan {
        draws,
        rejections,
        eye_poses,
    }
}

/// Pixels a rotation by `angle` about the view's up axis moves content across an image
/// of `width` pixels spanning `fov` (at the image centre).
pub fn yaw_shift_pixels(fov: &Fov, width: u32, angle: f32) -> f32 {
    let span = fov.angle_right.tan() - fov.angle_left.tan();
    angle.tan() / span * width as f32
}

/// A rotation about +Y (yaw), for tests and simulated motion.
pub fn yaw(angle: f32) -> Quat {
    Quat::from_rotation_y(angle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use leasehold_drivers::api::{EyeInfo, Fov};

    fn display() -> DisplayInfo {
        let eye = |x: f32| EyeInfo {
            eye_to_head: Pose {
                orientation: Quat::IDENTITY,
                position: Vec3::new(x, 0.0, 0.0),
            },
            fov: Fov::symmetric(1.6, 1.6),
        };
        DisplayInfo {
            panel_width: 200,
            panel_height: 100,
            eye_render_width: 100,
            eye_render_height: 100,
            refresh_hz: vec![90.0],
            scanout_to_photon_ns: 0,
            eyes: [eye(-0.032), eye(0.032)],
        }
    }

    fn images(id: u64) -> Option<ImageDesc> {
        match id {
            1 => Some(ImageDesc {
                id,
                width: 200,
                height: 100,
                array_layers: 1,
                format: Some(ColorFormat::Rgba8Srgb),
            }),
            2 => Some(ImageDesc {
                id,
                width: 64,
                height: 64,
                array_layers: 1,
                format: None,
            }),
            _ => None,
        }
    }

    fn proj(pose: Pose, x: i32, w: i32) -> Layer {
        let v = |x| ProjectionView {
            pose,
            fov: Fov::symmetric(1.6, 1.6),
            sub_image: SubImage {
                image: 1,
                x,
                y: 0,
                width: w,
                height: 100,
                array_index: 0,
            },
        };
        Layer::Projection {
            views: [v(x), v(x + w)],
            flags: LayerFlags::default(),
        }
    }

    #[test]
    fn identity_pose_gives_identity_rotation_and_side_by_side_rects() {
        let p = plan(
            &display(),
            Pose::IDENTITY,
            &[proj(Pose::IDENTITY, 0, 100)],
            &images,
        );
        assert!(p.rejections.is_empty(), "{:?}", p.rejections);
        let d = &p.draws[0][0].push;
        assert_eq!(&d[4..7], &[1.0, 0.0, 0.0]);
        assert_eq!(&d[8..11], &[0.0, 1.0, 0.0]);
        assert_eq!(&d[12..15], &[0.0, 0.0, 1.0]);
        assert_eq!(&d[20..24], &[0.0, 0.0, 0.5, 1.0]);
        assert_eq!(&p.draws[1][0].push[20..24], &[0.5, 0.0, 1.0, 1.0]);
    }

    #[test]
    fn bad_input_is_clamped_or_dropped_never_fatal() {
        let nan = Pose {
            orientation: Quat::from_xyzw(f32::NAN, 0.0, 0.0, 1.0),
            position: Vec3::ZERO,
        };
        let layers = [
            proj(nan, 150, 100), // NaN pose, right view beyond the image
            Layer::Quad {
                eyes: [true, true],
                sub_image: SubImage {
                    image: 2,
                    x: 0,
                    y: 0,
                    width: 64,
                    height: 64,
                    array_index: 0,
                },
                pose: Pose::IDENTITY,
                size: Vec2::ONE,
                flags: LayerFlags::default(),
            },
            proj(Pose::IDENTITY, 500, 10), // entirely outside
        ];
        let p = plan(&display(), nan, &layers, &images);
        // The NaN display pose falls back to identity; layer 0 is drawn (clamped) for
        // the left eye, layer 1 (unsampleable format) and layer 2 (outside) are dropped.
        assert!(p.rejections.iter().any(|r| r.layer == usize::MAX));
        assert!(p.rejections.iter().any(|r| r.layer == 0 && r.clamped));
        assert!(p.rejections.iter().any(|r| r.layer == 1 && !r.clamped));
        assert!(p.rejections.iter().any(|r| r.layer == 2 && !r.clamped));
        assert_eq!(p.draws[0].len(), 1);
        assert!(p.draws[0][0].push.iter().all(|v| v.is_finite()));
        assert_eq!(&p.draws[0][0].push[20..24], &[0.75, 0.0, 1.0, 1.0]);
        assert!(p.draws[1].is_empty(), "right view starts at x=250: outside");
    }

    #[test]
    fn a_quad_is_drawn_only_where_it_can_show() {
        let quad = |position: Vec3, size: f32| Layer::Quad {
            eyes: [true, true],
            sub_image: SubImage {
                image: 1,
                x: 0,
                y: 0,
                width: 100,
                height: 100,
                array_index: 0,
            },
            pose: Pose {
                orientation: Quat::IDENTITY,
                position,
            },
            size: Vec2::splat(size),
            flags: LayerFlags::default(),
        };
        // 0.2 m wide, 1 m ahead of the left eye (at x = -0.032): a small box around the
        // centre of the left eye's field (0.8 rad each way).
        let b = draw_of(quad(Vec3::new(-0.032, 0.0, -1.0), 0.2))
            .bounds
            .unwrap();
        let half = 0.1 / (2.0 * 0.8f32.tan());
        for (got, want) in b
            .iter()
            .zip([0.5 - half, 0.5 - half, 0.5 + half, 0.5 + half])
        {
            assert!((got - want).abs() < 1e-4, "{b:?}");
        }
        // Turned and reaching behind the eye: no box bounds it; the whole field is drawn.
        let mut straddling = quad(Vec3::new(0.0, 0.0, -0.5), 4.0);
        if let Layer::Quad { pose: p, .. } = &mut straddling {
            p.orientation = Quat::from_rotation_y(0.8);
        }
        assert_eq!(draw_of(straddling).bounds, None);
        // Behind the eyes, or far to the side: not drawn at all.
        for away in [Vec3::new(0.0, 0.0, 1.0), Vec3::new(100.0, 0.0, -1.0)] {
            let p = plan(&display(), Pose::IDENTITY, &[quad(away, 0.2)], &images);
            assert!(p.draws.iter().all(|d| d.is_empty()), "{away}: {p:?}");
            assert!(p.rejections.is_empty());
        }
        // Projection layers cover the field.
        assert!(p_bounds_none());
    }

    fn p_bounds_none() -> bool {
        let p = plan(
            &display(),
            Pose::IDENTITY,
            &[proj(Pose::IDENTITY, 0, 100)],
            &images,
        );
        p.draws[0].iter().all(|d| d.bounds.is_none())
    }

    fn draw_of(layer: Layer) -> LayerDraw {
        let p = plan(&display(), Pose::IDENTITY, &[layer], &images);
        assert!(p.rejections.is_empty(), "{:?}", p.rejections);
        p.draws[0][0]
    }

    fn full() -> SubImage {
        SubImage {
            image: 1,
            x: 0,
            y: 0,
            width: 200,
            height: 100,
            array_index: 0,
        }
    }

    #[test]
    fn cylinder_and_equirect_layers_map_directions_to_their_images() {
        use super::reference::layer_uv;
        let at = |yaw_angle: f32, pitch: f32| {
            Quat::from_rotation_y(yaw_angle) * Quat::from_rotation_x(pitch) * Vec3::NEG_Z
        };
        // A cylinder of 2 m around the head (the left eye 3.2 cm off its axis), 90° wide,
        // aspect 2: height 2 · (π/2) / 2 = π/2 m.
        let cyl = draw_of(Layer::Cylinder {
            eyes: [true, true],
            sub_image: full(),
            pose: Pose::IDENTITY,
            radius: 2.0,
            central_angle: std::f32::consts::FRAC_PI_2,
            aspect_ratio: 2.0,
            flags: LayerFlags::default(),
        });
        let c = layer_uv(&cyl.push, at(0.0, 0.0)).unwrap();
        // The left eye, 3.2 cm left of the axis, sees the centre line slightly to its right.
        assert!(
            (c.y - 0.5).abs() < 1e-4 && (c.x - 0.4898).abs() < 0.001,
            "{c}"
        );
        // 40° left of centre: u = 0.5 - 40/90 ≈ 0.056 (less the eye's offset); 50°: off.
        let l = layer_uv(&cyl.push, at(40f32.to_radians(), 0.0)).unwrap();
        assert!((l.x - (0.5 - 40.0 / 90.0)).abs() < 0.02, "{l}");
        assert!(layer_uv(&cyl.push, at(50f32.to_radians(), 0.0)).is_none());
        // Up: the top edge is π/4 m above the eye at 2 m: atan(0.393) ≈ 21.4°.
        assert!(layer_uv(&cyl.push, at(0.0, 20f32.to_radians())).is_some());
        assert!(layer_uv(&cyl.push, at(0.0, 23f32.to_radians())).is_none());
        // An equirect at infinity: 180° wide, +60° to -30°.
        let eq = draw_of(Layer::Equirect {
            eyes: [true, true],
            sub_image: full(),
            pose: Pose::IDENTITY,
            radius: 0.0,
            central_horizontal_angle: std::f32::consts::PI,
            upper_vertical_angle: 60f32.to_radians(),
            lower_vertical_angle: -30f32.to_radians(),
            flags: LayerFlags::default(),
        });
        let c = layer_uv(&eq.push, at(0.0, 0.0)).unwrap();
        assert!((c - Vec2::new(0.5, 60.0 / 90.0)).length() < 1e-4, "{c}");
        let p = layer_uv(&eq.push, at(-45f32.to_radians(), 30f32.to_radians())).unwrap();
        assert!((p - Vec2::new(0.75, 30.0 / 90.0)).length() < 1e-3, "{p}");
        assert!(layer_uv(&eq.push, at(0.0, -40f32.to_radians())).is_none());
        // Invalid shapes are dropped with a reason.
        let bad = plan(
            &display(),
            Pose::IDENTITY,
            &[Layer::Cylinder {
                eyes: [true, true],
                sub_image: full(),
                pose: Pose::IDENTITY,
                radius: -1.0,
                central_angle: 1.0,
                aspect_ratio: 1.0,
                flags: LayerFlags::default(),
            }],
            &images,
        );
        assert!(bad.draws[0].is_empty() && !bad.rejections.is_empty());
    }

    #[test]
    fn timewarp_rotation_is_layer_from_display() {
        // Rendered at yaw 0, displayed at yaw 0.1: content moves the other way.
        let p = plan(
            &display(),
            Pose {
                orientation: yaw(0.1),
                position: Vec3::ZERO,
            },
            &[proj(Pose::IDENTITY, 0, 100)],
            &images,
        );
        let d = &p.draws[0][0].push;
        let m = glam::Mat3::from_cols(
            Vec3::new(d[4], d[8], d[12]),
            Vec3::new(d[5], d[9], d[13]),
            Vec3::new(d[6], d[10], d[14]),
        );
        let fwd = m * Vec3::NEG_Z;
        // The display's forward is rotated left (+yaw) of the layer's.
        assert!((fwd.x - (-(0.1f32).sin())).abs() < 1e-5, "{fwd}");
        assert!(yaw_shift_pixels(&Fov::symmetric(1.6, 1.6), 100, 0.1) > 4.0);
    }
}
