//! Reference spaces, xrLocateSpace and xrLocateViews at the ABI.

use super::marshal::{done, guard};
use crate::core::registry::{Kind, REGISTRY};
use crate::core::session::{SessionCell, SessionObj, session, slock};
use crate::core::space::SpaceObj;
use crate::state::space::{ReferenceKind, ReferenceSpace, relative, validate_pose};
use leasehold_drivers::api::{Pose, TrackingOrigin};
use openxr_sys as xr;
use openxr_sys::Handle as _;
use std::sync::Arc;

/// Where this space is in the world frame at `time`; `None` when it is an action
/// space whose pose input is not tracked now.
fn world(
    sp: &SpaceObj,
    s: &SessionObj,
    head: &Pose,
    eye_height: f32,
    time: xr::Time,
) -> Option<Pose> {
    match sp.action {
        None => Some(sp.space.in_world(head, eye_height)),
        Some((a, sub)) => super::action::action_pose(s, a, sub, time.as_nanos() as u64)
            .map(|p| p.compose(&sp.space.pose_in_reference)),
    }
}

fn kind(t: xr::ReferenceSpaceType, local_floor: bool) -> Option<ReferenceKind> {
    match t {
        xr::ReferenceSpaceType::VIEW => Some(ReferenceKind::View),
        xr::ReferenceSpaceType::LOCAL => Some(ReferenceKind::Local),
        xr::ReferenceSpaceType::STAGE => Some(ReferenceKind::Stage),
        xr::ReferenceSpaceType::LOCAL_FLOOR if local_floor => Some(ReferenceKind::LocalFloor),
        _ => None,
    }
}

pub(super) fn to_pose(p: &xr::Posef) -> Pose {
    Pose {
        orientation: glam::Quat::from_xyzw(
            p.orientation.x,
            p.orientation.y,
            p.orientation.z,
            p.orientation.w,
        ),
        position: glam::Vec3::new(p.position.x, p.position.y, p.position.z),
    }
}

fn from_pose(p: &Pose) -> xr::Posef {
    xr::Posef {
        orientation: xr::Quaternionf {
            x: p.orientation.x,
            y: p.orientation.y,
            z: p.orientation.z,
            w: p.orientation.w,
        },
        position: xr::Vector3f {
            x: p.position.x,
            y: p.position.y,
            z: p.position.z,
        },
    }
}

/// The head's pose at `time`, the eye height above the floor, and whether the head is
/// tracked: a headset unplugged, or not yet streaming, has no pose (the identity stands
/// in, and whatever depends on the head reports no valid pose).
fn head(s: &SessionObj, time: xr::Time) -> Result<(Pose, f32, bool), xr::Result> {
    if time.as_nanos() <= 0 {
        return Err(xr::Result::ERROR_TIME_INVALID);
    }
    let eye_height = match s.hmd.tracking_origin() {
        TrackingOrigin::OrientationOnly { eye_height_m } => eye_height_m,
        TrackingOrigin::Room => 0.0,
    };
    match s.hmd.pose_at(time.as_nanos() as u64) {
        Ok(p) => Ok((p.pose, eye_height, true)),
        Err(e) => {
            tracing::debug!(%e, "the head is not tracked");
            Ok((Pose::IDENTITY, eye_height, false))
        }
    }
}

/// Where space `h` (of session `session`) is in the world frame at `time`: the frame
/// the compositor composes layers in.
pub(super) fn in_world(
    h: xr::Space,
    session: u64,
    s: &SessionObj,
    time: xr::Time,
) -> Result<Pose, xr::Result> {
    let sp = space(h)?;
    if sp.session != session {
        return Err(xr::Result::ERROR_VALIDATION_FAILURE);
    }
    let (head, eye_height, _) = head(s, time)?;
    // A layer in an untracked action space stays where the space was defined.
    Ok(world(&sp, s, &head, eye_height, time).unwrap_or(sp.space.pose_in_reference))
}

fn space(h: xr::Space) -> Result<Arc<SpaceObj>, xr::Result> {
    REGISTRY
        .get(Kind::Space, h.into_raw())
        .ok_or(xr::Result::ERROR_HANDLE_INVALID)
}

fn session_of(sp: &SpaceObj) -> Result<Arc<SessionCell>, xr::Result> {
    session(xr::Session::from_raw(sp.session))
}

pub(super) unsafe extern "system" fn enumerate_reference_spaces(
    h: xr::Session,
    capacity: u32,
    count_out: *mut u32,
    out: *mut xr::ReferenceSpaceType,
) -> xr::Result {
    guard("xrEnumerateReferenceSpaces", || {
        done((|| {
            let s = session(h)?;
            let mut types = vec![
                xr::ReferenceSpaceType::VIEW,
                xr::ReferenceSpaceType::LOCAL,
                xr::ReferenceSpaceType::STAGE,
            ];
            if slock(&s).local_floor {
                types.push(xr::ReferenceSpaceType::LOCAL_FLOOR);
            }
            // SAFETY: the two-call contract of the entry point.
            unsafe { super::marshal::two_call_copy(&types, capacity, count_out, out) }
        })())
    })
}

pub(super) unsafe extern "system" fn create_reference_space(
    h: xr::Session,
    info: *const xr::ReferenceSpaceCreateInfo,
    out: *mut xr::Space,
) -> xr::Result {
    guard("xrCreateReferenceSpace", || {
        done((|| {
            let s = session(h)?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let info = unsafe { super::marshal::input(info) }?;
            if out.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            let k = kind(info.reference_space_type, slock(&s).local_floor)
                .ok_or(xr::Result::ERROR_REFERENCE_SPACE_UNSUPPORTED)?;
            let pose = validate_pose(to_pose(&info.pose_in_reference_space))
                .map_err(|_| xr::Result::ERROR_POSE_INVALID)?;
            let (handle, _) = s.spaces.adopt(SpaceObj {
                session: h.into_raw(),
                space: ReferenceSpace {
                    kind: k,
                    pose_in_reference: pose,
                },
                action: None,
            });
            // SAFETY: checked non-null.
            unsafe { *out = xr::Space::from_raw(handle) };
            Ok(())
        })())
    })
}

pub(super) unsafe extern "system" fn destroy_space(h: xr::Space) -> xr::Result {
    guard("xrDestroySpace", || {
        let removed = space(h)
            .ok()
            .and_then(|sp| session_of(&sp).ok())
            .and_then(|s| s.spaces.remove(h.into_raw()));
        match removed {
            Some(_) => xr::Result::SUCCESS,
            None => xr::Result::ERROR_HANDLE_INVALID,
        }
    })
}

/// Where `sp` is in `bp` at `time`: the pose and its validity and tracking flags.
fn locate(
    s: &SessionObj,
    sp: &SpaceObj,
    bp: &SpaceObj,
    time: xr::Time,
) -> Result<(xr::SpaceLocationFlags, xr::Posef), xr::Result> {
    let (head, eye_height, tracked) = head(s, time)?;
    let view_involved =
        sp.space.kind == ReferenceKind::View || bp.space.kind == ReferenceKind::View;
    let (Some(a), Some(b)) = (
        world(sp, s, &head, eye_height, time),
        world(bp, s, &head, eye_height, time),
    ) else {
        // An action space whose input is not tracked: nothing is known.
        return Ok((xr::SpaceLocationFlags::EMPTY, from_pose(&Pose::IDENTITY)));
    };
    if view_involved && !tracked {
        // The headset is gone (or not streaming yet): the view has no pose.
        return Ok((xr::SpaceLocationFlags::EMPTY, from_pose(&Pose::IDENTITY)));
    }
    let p = relative(&b, &a);
    // Orientation is tracked; a 3-DoF headset's position is valid (neck-less, fixed)
    // but not tracked.
    let action_involved = sp.action.is_some() || bp.action.is_some();
    let flags = xr::SpaceLocationFlags::ORIENTATION_VALID
        | xr::SpaceLocationFlags::POSITION_VALID
        | if view_involved || action_involved {
            xr::SpaceLocationFlags::ORIENTATION_TRACKED
        } else {
            xr::SpaceLocationFlags::ORIENTATION_TRACKED | xr::SpaceLocationFlags::POSITION_TRACKED
        };
    Ok((flags, from_pose(&p)))
}

pub(super) unsafe extern "system" fn locate_space(
    h: xr::Space,
    base: xr::Space,
    time: xr::Time,
    location: *mut xr::SpaceLocation,
) -> xr::Result {
    guard("xrLocateSpace", || {
        done((|| {
            let sp = space(h)?;
            let bp = space(base)?;
            if sp.session != bp.session {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            // SAFETY: the app passes a valid structure, or null (refused).
            let loc = unsafe { super::marshal::output(location) }?;
            if time.as_nanos() <= 0 {
                return Err(xr::Result::ERROR_TIME_INVALID);
            }
            let s = session_of(&sp)?;
            let s = slock(&s);
            let (flags, pose) = locate(&s, &sp, &bp, time)?;
            loc.location_flags = flags;
            loc.pose = pose;
            // SAFETY: the output structure's `next` chain, as the app built it.
            unsafe { fill_velocities(loc.next, 1, |_| velocity(&s, &sp, &bp, time, (flags, pose))) }
        })())
    })
}

/// The velocity of `sp` in `bp` at `time`, from the tracking model: its location then
/// (`located`, as [`locate`] found it) and a millisecond earlier. Spaces fixed to each
/// other move at zero, validly.
fn velocity(
    s: &SessionObj,
    sp: &SpaceObj,
    bp: &SpaceObj,
    time: xr::Time,
    located: (xr::SpaceLocationFlags, xr::Posef),
) -> Result<xr::SpaceVelocityData, xr::Result> {
    const DT_NS: i64 = 1_000_000;
    let (f1, p1) = located;
    let earlier = xr::Time::from_nanos(time.as_nanos() - DT_NS);
    let Ok((f0, p0)) = locate(s, sp, bp, earlier) else {
        return Ok(xr::SpaceVelocityData::default());
    };
    let valid = xr::SpaceLocationFlags::ORIENTATION_VALID | xr::SpaceLocationFlags::POSITION_VALID;
    if !(f1.contains(valid) && f0.contains(valid)) {
        return Ok(xr::SpaceVelocityData::default());
    }
    let (a, b) = (to_pose(&p0), to_pose(&p1));
    let dt = DT_NS as f32 * 1e-9;
    let linear = (b.position - a.position) / dt;
    // The shorter way round: a delta on the other hemisphere would read as ~2π.
    let delta = b.orientation * a.orientation.inverse();
    let delta = if delta.w < 0.0 { -delta } else { delta };
    let (axis, angle) = delta.to_axis_angle();
    let angular = if angle.is_finite() && axis.is_finite() {
        axis * angle / dt
    } else {
        glam::Vec3::ZERO
    };
    let flags = xr::SpaceVelocityFlags::LINEAR_VALID | xr::SpaceVelocityFlags::ANGULAR_VALID;
    let v3 = |v: glam::Vec3| xr::Vector3f {
        x: v.x,
        y: v.y,
        z: v.z,
    };
    Ok(xr::SpaceVelocityData {
        velocity_flags: flags,
        linear_velocity: v3(linear),
        angular_velocity: v3(angular),
    })
}

/// Fills the XrSpaceVelocity / XrSpaceVelocities in an output chain of `count` locations
/// with `of(i)`.
///
/// # Safety
/// `next` must be null or a valid output structure chain.
unsafe fn fill_velocities(
    next: *mut std::ffi::c_void,
    count: u32,
    of: impl Fn(usize) -> Result<xr::SpaceVelocityData, xr::Result>,
) -> Result<(), xr::Result> {
    let visit = |ty: xr::StructureType, at: *const std::ffi::c_void| {
        if ty == xr::StructureType::SPACE_VELOCITY && count == 1 {
            // SAFETY: the type says what it is; the app's output chain is writable.
            let v = unsafe { &mut *(at as *mut xr::SpaceVelocity) };
            let d = of(0)?;
            v.velocity_flags = d.velocity_flags;
            v.linear_velocity = d.linear_velocity;
            v.angular_velocity = d.angular_velocity;
        } else if ty == xr::StructureType::SPACE_VELOCITIES {
            // SAFETY: as above.
            let v = unsafe { &mut *(at as *mut xr::SpaceVelocities) };
            if v.velocity_count != count || v.velocities.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            // SAFETY: `velocity_count` elements by contract, checked non-null.
            let out = unsafe { std::slice::from_raw_parts_mut(v.velocities, count as usize) };
            for (i, o) in out.iter_mut().enumerate() {
                *o = of(i)?;
            }
        }
        Ok(())
    };
    // SAFETY: by this function's contract.
    unsafe { super::marshal::walk_chain(next, visit) }
}

/// xrLocateSpaces (OpenXR 1.1) and xrLocateSpacesKHR (XR_KHR_locate_spaces): many spaces
/// in one base space at one time.
pub(super) unsafe extern "system" fn locate_spaces(
    h: xr::Session,
    info: *const xr::SpacesLocateInfo,
    locations: *mut xr::SpaceLocations,
) -> xr::Result {
    guard("xrLocateSpaces", || {
        done((|| {
            let s = session(h)?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let info = unsafe { super::marshal::input(info) }?;
            // SAFETY: as above.
            let out = unsafe { super::marshal::output(locations) }?;
            if info.time.as_nanos() <= 0 {
                return Err(xr::Result::ERROR_TIME_INVALID);
            }
            // SAFETY: `space_count` handles by contract.
            let spaces = unsafe { super::marshal::array(info.spaces, info.space_count, false) }?;
            if out.location_count != info.space_count || out.locations.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            let base = space(info.base_space)?;
            let objs = spaces
                .iter()
                .map(|&sp| space(sp))
                .collect::<Result<Vec<_>, _>>()?;
            if base.session != h.into_raw() || objs.iter().any(|o| o.session != h.into_raw()) {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            let s = slock(&s);
            let located = objs
                .iter()
                .map(|sp| locate(&s, sp, &base, info.time))
                .collect::<Result<Vec<_>, _>>()?;
            // SAFETY: `location_count` elements by contract, checked non-null.
            let dst = unsafe { std::slice::from_raw_parts_mut(out.locations, located.len()) };
            for (d, &(flags, pose)) in dst.iter_mut().zip(&located) {
                d.location_flags = flags;
                d.pose = pose;
            }
            // SAFETY: the output structure's `next` chain, as the app built it.
            unsafe {
                fill_velocities(out.next, info.space_count, |i| {
                    velocity(&s, &objs[i], &base, info.time, located[i])
                })
            }
        })())
    })
}

/// The log target of one record per xrLocateViews: the display time asked for, when
/// (CLOCK_MONOTONIC ns), whether the head was tracked and its orientation in the base
/// space — what the app was told, for checking it against a headset's known motion.
const LOCATE_TARGET: &str = "leasehold_openxr::locate";

pub(super) unsafe extern "system" fn locate_views(
    h: xr::Session,
    info: *const xr::ViewLocateInfo,
    state: *mut xr::ViewState,
    capacity: u32,
    count_out: *mut u32,
    views: *mut xr::View,
) -> xr::Result {
    guard("xrLocateViews", || {
        done((|| {
            let s = session(h)?;
            if info.is_null() || state.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            // SAFETY: checked non-null.
            let (info, st) = unsafe { (&*info, &mut *state) };
            if info.ty != xr::StructureType::VIEW_LOCATE_INFO
                || st.ty != xr::StructureType::VIEW_STATE
            {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            if info.view_configuration_type != xr::ViewConfigurationType::PRIMARY_STEREO {
                return Err(xr::Result::ERROR_VIEW_CONFIGURATION_TYPE_UNSUPPORTED);
            }
            let base = space(info.space)?;
            if base.session != h.into_raw() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            let s = slock(&s);
            let (head, eye_height, tracked) = head(&s, info.display_time)?;
            let base_world =
                world(&base, &s, &head, eye_height, info.display_time).filter(|_| tracked);
            let Some(base_world) = base_world else {
                // Views in an untracked action space, or of a headset that is not tracked
                // (unplugged, not streaming yet): no valid pose.
                st.view_state_flags = xr::ViewStateFlags::EMPTY;
                tracing::trace!(
                    target: LOCATE_TARGET,
                    display_time = info.display_time.as_nanos(),
                    at = crate::core::session::now_ns(),
                    tracked = false,
                    "views located"
                );
                // SAFETY: the two-call contract of the entry point.
                return unsafe {
                    super::marshal::two_call(&s.display.eyes, capacity, count_out, views, |o, _| {
                        if o.ty != xr::StructureType::VIEW {
                            return Err(xr::Result::ERROR_VALIDATION_FAILURE);
                        }
                        o.pose = from_pose(&Pose::IDENTITY);
                        Ok(())
                    })
                };
            };
            let view = relative(&base_world, &head);
            let q = view.orientation;
            tracing::trace!(
                target: LOCATE_TARGET,
                display_time = info.display_time.as_nanos(),
                at = crate::core::session::now_ns(),
                tracked = true,
                qx = q.x,
                qy = q.y,
                qz = q.z,
                qw = q.w,
                "views located"
            );
            let eyes: Vec<(Pose, leasehold_drivers::api::Fov)> = s
                .display
                .eyes
                .iter()
                .map(|e| (view.compose(&e.eye_to_head), e.fov))
                .collect();
            st.view_state_flags = xr::ViewStateFlags::ORIENTATION_VALID
                | xr::ViewStateFlags::POSITION_VALID
                | xr::ViewStateFlags::ORIENTATION_TRACKED;
            // SAFETY: the two-call contract of the entry point.
            unsafe {
                super::marshal::two_call(&eyes, capacity, count_out, views, |o, (p, f)| {
                    if o.ty != xr::StructureType::VIEW {
                        return Err(xr::Result::ERROR_VALIDATION_FAILURE);
                    }
                    o.pose = from_pose(p);
                    o.fov = xr::Fovf {
                        angle_left: f.angle_left,
                        angle_right: f.angle_right,
                        angle_up: f.angle_up,
                        angle_down: f.angle_down,
                    };
                    Ok(())
                })
            }
        })())
    })
}

pub(super) unsafe extern "system" fn create_action_space(
    h: xr::Session,
    info: *const xr::ActionSpaceCreateInfo,
    out: *mut xr::Space,
) -> xr::Result {
    guard("xrCreateActionSpace", || {
        done((|| {
            let s = session(h)?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let info = unsafe { super::marshal::input(info) }?;
            if out.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            super::action::pose_action(&slock(&s), info.action, info.subaction_path)?;
            let pose = validate_pose(to_pose(&info.pose_in_action_space))
                .map_err(|_| xr::Result::ERROR_POSE_INVALID)?;
            let (handle, _) = s.spaces.adopt(SpaceObj {
                session: h.into_raw(),
                space: ReferenceSpace {
                    kind: ReferenceKind::Local,
                    pose_in_reference: pose,
                },
                action: Some((info.action.into_raw(), info.subaction_path.into_raw())),
            });
            // SAFETY: checked non-null.
            unsafe { *out = xr::Space::from_raw(handle) };
            Ok(())
        })())
    })
}

/// The play area STAGE's bounds describe until a room setup exists: a square of this
/// many metres a side, centred on STAGE's origin (the floor below where the user was at
/// the session's start). An orientation-tracked headset does not leave it.
pub const PLAY_AREA_M: f32 = 2.0;

/// STAGE has the default play area's bounds; the other reference spaces have none
/// (XR_SPACE_BOUNDS_UNAVAILABLE with a zero extent, as the specification says).
pub(super) unsafe extern "system" fn get_reference_space_bounds_rect(
    h: xr::Session,
    t: xr::ReferenceSpaceType,
    bounds: *mut xr::Extent2Df,
) -> xr::Result {
    guard("xrGetReferenceSpaceBoundsRect", || {
        let r = (|| {
            let s = session(h)?;
            if bounds.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            let k = kind(t, slock(&s).local_floor)
                .ok_or(xr::Result::ERROR_REFERENCE_SPACE_UNSUPPORTED)?;
            let (extent, result) = if k == ReferenceKind::Stage {
                (PLAY_AREA_M, xr::Result::SUCCESS)
            } else {
                (0.0, xr::Result::SPACE_BOUNDS_UNAVAILABLE)
            };
            // SAFETY: checked non-null.
            unsafe {
                *bounds = xr::Extent2Df {
                    width: extent,
                    height: extent,
                }
            };
            Ok(result)
        })();
        r.unwrap_or_else(|e| e)
    })
}

/// XR_KHR_visibility_mask: the part of each eye's image the lens shows (or hides), from
/// the headset's lens model.
pub(super) unsafe extern "system" fn get_visibility_mask(
    h: xr::Session,
    view_configuration: xr::ViewConfigurationType,
    view_index: u32,
    mask_type: xr::VisibilityMaskTypeKHR,
    out: *mut xr::VisibilityMaskKHR,
) -> xr::Result {
    use crate::state::visibility::{self, MaskType};
    guard("xrGetVisibilityMaskKHR", || {
        done((|| {
            let s = session(h)?;
            if view_configuration != xr::ViewConfigurationType::PRIMARY_STEREO {
                return Err(xr::Result::ERROR_VIEW_CONFIGURATION_TYPE_UNSUPPORTED);
            }
            if view_index >= 2 {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            let kind = match mask_type {
                xr::VisibilityMaskTypeKHR::HIDDEN_TRIANGLE_MESH => MaskType::HiddenTriangles,
                xr::VisibilityMaskTypeKHR::VISIBLE_TRIANGLE_MESH => MaskType::VisibleTriangles,
                xr::VisibilityMaskTypeKHR::LINE_LOOP => MaskType::LineLoop,
                _ => return Err(xr::Result::ERROR_VALIDATION_FAILURE),
            };
            // SAFETY: the app passes a valid structure, or null (refused).
            let out = unsafe { super::marshal::output(out) }?;
            let (lens, fov) = {
                let s = slock(&s);
                (s.hmd.lens(), s.display.eyes[view_index as usize].fov)
            };
            let m = visibility::mask(&lens, view_index as usize, &fov, kind);
            out.vertex_count_output = m.vertices.len() as u32;
            out.index_count_output = m.indices.len() as u32;
            // The structure-style two-call idiom: either capacity 0 asks for the counts
            // only; otherwise both arrays must fit.
            if out.vertex_capacity_input == 0 || out.index_capacity_input == 0 {
                return Ok(());
            }
            if (out.vertex_capacity_input as usize) < m.vertices.len()
                || (out.index_capacity_input as usize) < m.indices.len()
            {
                return Err(xr::Result::ERROR_SIZE_INSUFFICIENT);
            }
            if out.vertices.is_null() || out.indices.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            // SAFETY: non-null, room for `vertex_capacity_input` >= len elements.
            let dst = unsafe { std::slice::from_raw_parts_mut(out.vertices, m.vertices.len()) };
            for (d, v) in dst.iter_mut().zip(&m.vertices) {
                *d = xr::Vector2f { x: v.x, y: v.y };
            }
            // SAFETY: non-null, room for `index_capacity_input` >= len elements.
            let dst = unsafe { std::slice::from_raw_parts_mut(out.indices, m.indices.len()) };
            dst.copy_from_slice(&m.indices);
            Ok(())
        })())
    })
}
