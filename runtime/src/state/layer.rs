//! The rules a composition layer must follow before it reaches the compositor
//! (xrEndFrame): sub-image rectangles inside their swapchain, fields of view and shapes
//! that describe something, known flags. Plain data in, a reason out: the ABI maps the
//! reason to its `XrResult` and logs it.

use leasehold_drivers::api::Fov;

/// Why a layer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerError {
    /// XR_ERROR_VALIDATION_FAILURE, with what was wrong.
    Invalid(&'static str),
    /// XR_ERROR_SWAPCHAIN_RECT_INVALID.
    RectInvalid,
}

impl std::fmt::Display for LayerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LayerError::Invalid(why) => f.write_str(why),
            LayerError::RectInvalid => {
                f.write_str("the sub-image rectangle is not inside its swapchain image")
            }
        }
    }
}

use LayerError::Invalid;

/// A sub-image rectangle as the app gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub width: i32,
    pub height: i32,
}

/// What a sub-image refers to: its swapchain's size and kind, and whether that
/// swapchain belongs to the frame's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwapchainShape {
    pub width: u32,
    pub height: u32,
    pub array_size: u32,
    /// 1, or 6 for a cube map.
    pub faces: u32,
    pub same_session: bool,
}

/// A flat layer's sub-image: a rectangle of one array layer of a flat swapchain of the
/// frame's session.
pub fn check_sub_image(sc: SwapchainShape, r: Rect, array_index: u32) -> Result<(), LayerError> {
    if !sc.same_session {
        return Err(Invalid("the swapchain belongs to another session"));
    }
    if sc.faces != 1 {
        return Err(Invalid("a cube swapchain where a flat image belongs"));
    }
    let inside = r.x >= 0
        && r.y >= 0
        && r.width > 0
        && r.height > 0
        && i64::from(r.x) + i64::from(r.width) <= i64::from(sc.width)
        && i64::from(r.y) + i64::from(r.height) <= i64::from(sc.height);
    if !inside {
        return Err(LayerError::RectInvalid);
    }
    if array_index >= sc.array_size {
        return Err(Invalid("imageArrayIndex beyond the swapchain's array size"));
    }
    Ok(())
}

/// A cube layer's image: a cube swapchain of the frame's session, one of its cubes.
pub fn check_cube(sc: SwapchainShape, array_index: u32) -> Result<(), LayerError> {
    if !sc.same_session {
        return Err(Invalid("the swapchain belongs to another session"));
    }
    if sc.faces != 6 {
        return Err(Invalid("a cube layer needs a cube swapchain"));
    }
    if array_index >= sc.array_size {
        return Err(Invalid("imageArrayIndex beyond the swapchain's array size"));
    }
    Ok(())
}

/// A projection view's field of view: finite, within ±90°, left of right and below up.
pub fn check_fov(f: Fov) -> Result<Fov, LayerError> {
    let angles = [f.angle_left, f.angle_right, f.angle_up, f.angle_down];
    let ok = angles
        .iter()
        .all(|a| a.is_finite() && a.abs() < std::f32::consts::FRAC_PI_2)
        && f.angle_left < f.angle_right
        && f.angle_down < f.angle_up;
    if ok {
        Ok(f)
    } else {
        Err(Invalid("a projection view's field of view is not valid"))
    }
}

/// A projection layer has one view per eye.
pub fn check_view_count(count: u32, views_given: bool) -> Result<(), LayerError> {
    if count == 2 && views_given {
        Ok(())
    } else {
        Err(Invalid("a projection layer needs exactly 2 views (stereo)"))
    }
}

/// Eye visibility: 0 both, 1 left, 2 right.
pub fn eyes(raw: i32) -> Result<[bool; 2], LayerError> {
    match raw {
        0 => Ok([true, true]),
        1 => Ok([true, false]),
        2 => Ok([false, true]),
        _ => Err(Invalid("an eye visibility that is not BOTH, LEFT or RIGHT")),
    }
}

/// Layer flags: only the ones OpenXR 1.0 defines.
pub fn check_flags(bits: u64, known: u64) -> Result<(), LayerError> {
    if bits & !known == 0 {
        Ok(())
    } else {
        Err(Invalid("unknown composition layer flags"))
    }
}

/// Whether a shape with these checks is drawn: valid but empty shapes are accepted and
/// show nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Drawn,
    Empty,
}

fn drawn(visible: bool) -> Shape {
    if visible { Shape::Drawn } else { Shape::Empty }
}

/// A radius the compositor can draw: non-negative (0 and infinity: at infinity), not NaN.
pub fn valid_radius(r: f32) -> bool {
    r >= 0.0
}

pub fn check_quad(width: f32, height: f32) -> Result<Shape, LayerError> {
    if !(width.is_finite() && height.is_finite()) || width < 0.0 || height < 0.0 {
        return Err(Invalid(
            "a quad layer's size is not finite and non-negative",
        ));
    }
    Ok(drawn(width > 0.0 && height > 0.0))
}

pub fn check_cylinder(radius: f32, central_angle: f32, aspect: f32) -> Result<Shape, LayerError> {
    let ok = valid_radius(radius)
        && (0.0..std::f32::consts::TAU).contains(&central_angle)
        && aspect.is_finite()
        && aspect > 0.0;
    if !ok {
        return Err(Invalid(
            "a cylinder layer's radius, central angle or aspect ratio is not valid",
        ));
    }
    Ok(drawn(central_angle > 0.0))
}

pub fn check_equirect2(
    radius: f32,
    central_horizontal: f32,
    upper: f32,
    lower: f32,
) -> Result<Shape, LayerError> {
    let half_pi = std::f32::consts::FRAC_PI_2;
    let ok = valid_radius(radius)
        && (0.0..=std::f32::consts::TAU).contains(&central_horizontal)
        && (-half_pi..=half_pi).contains(&upper)
        && (-half_pi..=half_pi).contains(&lower)
        && lower <= upper;
    if !ok {
        return Err(Invalid(
            "an equirect2 layer's radius or angles are not valid",
        ));
    }
    Ok(drawn(central_horizontal > 0.0 && upper > lower))
}

pub fn check_equirect(radius: f32, scale: [f32; 2], bias: [f32; 2]) -> Result<(), LayerError> {
    let finite = scale.iter().chain(&bias).all(|v| v.is_finite());
    if valid_radius(radius) && finite {
        Ok(())
    } else {
        Err(Invalid(
            "an equirect layer's radius, scale or bias is not valid",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f32::consts::{FRAC_PI_2, PI, TAU};

    const SC: SwapchainShape = SwapchainShape {
        width: 640,
        height: 480,
        array_size: 2,
        faces: 1,
        same_session: true,
    };

    fn rect(x: i32, y: i32, width: i32, height: i32) -> Rect {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    #[test]
    fn sub_images_stay_inside_their_swapchain() {
        assert_eq!(check_sub_image(SC, rect(0, 0, 640, 480), 1), Ok(()));
        assert_eq!(check_sub_image(SC, rect(320, 240, 320, 240), 0), Ok(()));
        for r in [
            rect(-1, 0, 10, 10),
            rect(0, -1, 10, 10),
            rect(0, 0, 0, 10),
            rect(0, 0, 10, -5),
            rect(1, 0, 640, 480),
            rect(0, 1, 640, 480),
            rect(i32::MAX, 0, i32::MAX, 1),
        ] {
            assert_eq!(
                check_sub_image(SC, r, 0),
                Err(LayerError::RectInvalid),
                "{r:?}"
            );
        }
        assert!(matches!(
            check_sub_image(SC, rect(0, 0, 1, 1), 2),
            Err(Invalid(_))
        ));
        let other = SwapchainShape {
            same_session: false,
            ..SC
        };
        assert!(matches!(
            check_sub_image(other, rect(0, 0, 1, 1), 0),
            Err(Invalid(_))
        ));
        let cube = SwapchainShape { faces: 6, ..SC };
        assert!(matches!(
            check_sub_image(cube, rect(0, 0, 1, 1), 0),
            Err(Invalid(_))
        ));
        assert_eq!(check_cube(cube, 1), Ok(()));
        assert!(check_cube(cube, 2).is_err());
        assert!(check_cube(SC, 0).is_err(), "a flat swapchain is no cube");
    }

    #[test]
    fn fields_of_view_views_eyes_and_flags() {
        let fov = |l, r, u, d| Fov {
            angle_left: l,
            angle_right: r,
            angle_up: u,
            angle_down: d,
        };
        assert!(check_fov(fov(-0.8, 0.7, 0.8, -0.9)).is_ok());
        assert!(
            check_fov(fov(0.7, -0.8, 0.8, -0.9)).is_err(),
            "left of right"
        );
        assert!(
            check_fov(fov(-0.8, 0.7, -0.9, 0.8)).is_err(),
            "down below up"
        );
        assert!(check_fov(fov(-FRAC_PI_2, 0.7, 0.8, -0.9)).is_err(), "±90°");
        assert!(check_fov(fov(f32::NAN, 0.7, 0.8, -0.9)).is_err());
        assert!(check_view_count(2, true).is_ok());
        assert!(check_view_count(1, true).is_err());
        assert!(check_view_count(2, false).is_err());
        assert_eq!(eyes(0), Ok([true, true]));
        assert_eq!(eyes(2), Ok([false, true]));
        assert!(eyes(3).is_err());
        assert!(check_flags(0b110, 0b111).is_ok());
        assert!(check_flags(0b1000, 0b111).is_err());
    }

    #[test]
    fn shapes_valid_empty_or_refused() {
        assert_eq!(check_quad(1.0, 0.5), Ok(Shape::Drawn));
        assert_eq!(check_quad(0.0, 0.5), Ok(Shape::Empty));
        assert!(check_quad(-1.0, 0.5).is_err());
        assert!(check_quad(f32::INFINITY, 0.5).is_err());
        assert_eq!(check_cylinder(1.0, PI, 1.0), Ok(Shape::Drawn));
        assert_eq!(check_cylinder(f32::INFINITY, PI, 1.0), Ok(Shape::Drawn));
        assert_eq!(check_cylinder(1.0, 0.0, 1.0), Ok(Shape::Empty));
        assert!(check_cylinder(-1.0, PI, 1.0).is_err());
        assert!(check_cylinder(f32::NAN, PI, 1.0).is_err());
        assert!(check_cylinder(1.0, TAU, 1.0).is_err());
        assert!(check_cylinder(1.0, PI, 0.0).is_err());
        assert_eq!(check_equirect2(1.0, PI, 0.5, -0.5), Ok(Shape::Drawn));
        assert_eq!(check_equirect2(1.0, PI, 0.5, 0.5), Ok(Shape::Empty));
        assert!(
            check_equirect2(1.0, PI, -0.5, 0.5).is_err(),
            "lower above upper"
        );
        assert!(check_equirect2(1.0, TAU + 0.1, 0.5, -0.5).is_err());
        assert!(check_equirect2(-1.0, PI, 0.5, -0.5).is_err());
        assert!(check_equirect(1.0, [1.0, 1.0], [0.0, 0.0]).is_ok());
        assert!(check_equirect(1.0, [f32::NAN, 1.0], [0.0, 0.0]).is_err());
        assert!(check_equirect(f32::NAN, [1.0, 1.0], [0.0, 0.0]).is_err());
    }
}
