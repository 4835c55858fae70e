//! Reference spaces and where things are in them.
//!
//! All spaces hang off one world frame: LOCAL's origin (the head's starting position,
//! gravity-aligned, at eye level). STAGE and LOCAL_FLOOR share LOCAL's axes with their
//! origin on the floor, `eye_height` below; VIEW is the head at the requested time.
//! Each space adds the app's `pose_in_reference_space` offset.

use glam::{Quat, Vec3};
use leasehold_drivers::api::Pose;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceKind {
    View,
    Local,
    Stage,
    LocalFloor,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReferenceSpace {
    pub kind: ReferenceKind,
    /// The app's offset within the reference space.
    pub pose_in_reference: Pose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoseError {
    /// Not a unit quaternion, or not finite (XR_ERROR_POSE_INVALID).
    Invalid,
}

/// Accepts an app-provided pose: finite, with a unit orientation (within the spec's
/// tolerance); returns it normalised.
pub fn validate_pose(p: Pose) -> Result<Pose, PoseError> {
    if !p.is_finite() || (p.orientation.length() - 1.0).abs() > 1e-2 {
        return Err(PoseError::Invalid);
    }
    Ok(Pose {
        orientation: p.orientation.normalize(),
        position: p.position,
    })
}

/// `world` expressed relative to `base_world` (both in the world frame).
pub fn relative(base_world: &Pose, world: &Pose) -> Pose {
    inverse(base_world).compose(world)
}

fn inverse(p: &Pose) -> Pose {
    let q = p.orientation.inverse();
    Pose {
        orientation: q,
        position: q * -p.position,
    }
}

impl ReferenceSpace {
    /// This space's origin in the world frame, given the head's pose (in LOCAL) at the
    /// time asked about.
    pub fn in_world(&self, head: &Pose, eye_height: f32) -> Pose {
        let origin = match self.kind {
            ReferenceKind::Local => Pose::IDENTITY,
            ReferenceKind::Stage | ReferenceKind::LocalFloor => Pose {
                orientation: Quat::IDENTITY,
                position: Vec3::new(0.0, -eye_height, 0.0),
            },
            ReferenceKind::View => *head,
        };
        origin.compose(&self.pose_in_reference)
    }

    /// Where `self` is, expressed in `base`.
    pub fn locate_in(&self, base: &ReferenceSpace, head: &Pose, eye_height: f32) -> Pose {
        inverse(&base.in_world(head, eye_height)).compose(&self.in_world(head, eye_height))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(kind: ReferenceKind) -> ReferenceSpace {
        ReferenceSpace {
            kind,
            pose_in_reference: Pose::IDENTITY,
        }
    }

    #[test]
    fn view_in_local_is_the_head_and_stage_is_below() {
        let head = Pose {
            orientation: Quat::from_rotation_y(0.5),
            position: Vec3::new(0.1, 0.0, 0.0),
        };
        let v = space(ReferenceKind::View).locate_in(&space(ReferenceKind::Local), &head, 1.6);
        assert!(v.orientation.angle_between(head.orientation) < 1e-6);
        assert!((v.position - head.position).length() < 1e-6);
        let s = space(ReferenceKind::Stage).locate_in(&space(ReferenceKind::Local), &head, 1.6);
        assert!((s.position - Vec3::new(0.0, -1.6, 0.0)).length() < 1e-6);
        let l = space(ReferenceKind::Local).locate_in(&space(ReferenceKind::Stage), &head, 1.6);
        assert!((l.position - Vec3::new(0.0, 1.6, 0.0)).length() < 1e-6);
        // An offset space: LOCAL shifted 1 m forward.
        let fwd = ReferenceSpace {
            kind: ReferenceKind::Local,
            pose_in_reference: Pose {
                orientation: Quat::IDENTITY,
                position: Vec3::new(0.0, 0.0, -1.0),
            },
        };
        let p = space(ReferenceKind::Local).locate_in(&fwd, &head, 1.6);
        assert!((p.position - Vec3::new(0.0, 0.0, 1.0)).length() < 1e-6);
    }

    #[test]
    fn poses_are_validated() {
        let bad = Pose {
            orientation: Quat::from_xyzw(0.0, 0.0, 0.0, 0.0),
            position: Vec3::ZERO,
        };
        assert_eq!(validate_pose(bad), Err(PoseError::Invalid));
        let nan = Pose {
            orientation: Quat::IDENTITY,
            position: Vec3::NAN,
        };
        assert_eq!(validate_pose(nan), Err(PoseError::Invalid));
        assert!(validate_pose(Pose::IDENTITY).is_ok());
    }
}
