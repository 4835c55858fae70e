//! Actions, in plain Rust: the interaction profiles Leasehold accepts bindings for, the
//! binding of actions to controller inputs, and action state across xrSyncActions.
//!
//! The drivers' controllers offer the Khronos simple controller's inputs (select, menu,
//! grip and aim poses, haptics), so `/interaction_profiles/khr/simple_controller` is the
//! profile that becomes current when the app suggested bindings for it. Suggestions for
//! the other profiles the specification defines for common controllers are validated
//! and kept, but drive nothing until a driver offers such a controller.

use leasehold_drivers::api::InputState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionType {
    Boolean,
    Float,
    Vector2f,
    Pose,
    Vibration,
}

/// What an input or output component is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Click,
    Touch,
    Value,
    Force,
    Vector2,
    Pose,
    Haptic,
}

impl Component {
    /// Whether an action of type `t` may bind to this component.
    pub fn fits(self, t: ActionType) -> bool {
        use Component::*;
        match t {
            ActionType::Boolean => matches!(self, Click | Touch | Value | Force),
            ActionType::Float => matches!(self, Click | Touch | Value | Force),
            ActionType::Vector2f => self == Vector2,
            ActionType::Pose => self == Pose,
            ActionType::Vibration => self == Haptic,
        }
    }
}

pub const SIMPLE_CONTROLLER: &str = "/interaction_profiles/khr/simple_controller";
pub const HANDS: [&str; 2] = ["/user/hand/left", "/user/hand/right"];

use Component::*;

const SIMPLE: &[(&str, Component)] = &[
    ("input/select/click", Click),
    ("input/menu/click", Click),
    ("input/grip/pose", Pose),
    ("input/aim/pose", Pose),
    ("output/haptic", Haptic),
];

const VIVE: &[(&str, Component)] = &[
    ("input/system/click", Click),
    ("input/squeeze/click", Click),
    ("input/menu/click", Click),
    ("input/trigger/click", Click),
    ("input/trigger/value", Value),
    ("input/trackpad", Vector2),
    ("input/trackpad/x", Value),
    ("input/trackpad/y", Value),
    ("input/trackpad/click", Click),
    ("input/trackpad/touch", Touch),
    ("input/grip/pose", Pose),
    ("input/aim/pose", Pose),
    ("output/haptic", Haptic),
];

const TOUCH: &[(&str, Component)] = &[
    ("input/x/click", Click),
    ("input/x/touch", Touch),
    ("input/y/click", Click),
    ("input/y/touch", Touch),
    ("input/a/click", Click),
    ("input/a/touch", Touch),
    ("input/b/click", Click),
    ("input/b/touch", Touch),
    ("input/menu/click", Click),
    ("input/system/click", Click),
    ("input/squeeze/value", Value),
    ("input/trigger/value", Value),
    ("input/trigger/touch", Touch),
    ("input/thumbstick", Vector2),
    ("input/thumbstick/x", Value),
    ("input/thumbstick/y", Value),
    ("input/thumbstick/click", Click),
    ("input/thumbstick/touch", Touch),
    ("input/thumbrest/touch", Touch),
    ("input/grip/pose", Pose),
    ("input/aim/pose", Pose),
    ("output/haptic", Haptic),
];

const INDEX: &[(&str, Component)] = &[
    ("input/system/click", Click),
    ("input/system/touch", Touch),
    ("input/a/click", Click),
    ("input/a/touch", Touch),
    ("input/b/click", Click),
    ("input/b/touch", Touch),
    ("input/squeeze/value", Value),
    ("input/squeeze/force", Force),
    ("input/trigger/click", Click),
    ("input/trigger/value", Value),
    ("input/trigger/touch", Touch),
    ("input/thumbstick", Vector2),
    ("input/thumbstick/x", Value),
    ("input/thumbstick/y", Value),
    ("input/thumbstick/click", Click),
    ("input/thumbstick/touch", Touch),
    ("input/trackpad", Vector2),
    ("input/trackpad/x", Value),
    ("input/trackpad/y", Value),
    ("input/trackpad/force", Force),
    ("input/trackpad/touch", Touch),
    ("input/grip/pose", Pose),
    ("input/aim/pose", Pose),
    ("output/haptic", Haptic),
];

const MOTION: &[(&str, Component)] = &[
    ("input/menu/click", Click),
    ("input/squeeze/click", Click),
    ("input/trigger/value", Value),
    ("input/thumbstick", Vector2),
    ("input/thumbstick/x", Value),
    ("input/thumbstick/y", Value),
    ("input/thumbstick/click", Click),
    ("input/trackpad", Vector2),
    ("input/trackpad/x", Value),
    ("input/trackpad/y", Value),
    ("input/trackpad/click", Click),
    ("input/trackpad/touch", Touch),
    ("input/grip/pose", Pose),
    ("input/aim/pose", Pose),
    ("output/haptic", Haptic),
];

/// The interaction profiles bindings are accepted for.
pub const PROFILES: &[(&str, &[(&str, Component)])] = &[
    (SIMPLE_CONTROLLER, SIMPLE),
    ("/interaction_profiles/htc/vive_controller", VIVE),
    ("/interaction_profiles/oculus/touch_controller", TOUCH),
    ("/interaction_profiles/valve/index_controller", INDEX),
    ("/interaction_profiles/microsoft/motion_controller", MOTION),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingError {
    /// Not an interaction profile, or not a binding of that profile
    /// (XR_ERROR_PATH_UNSUPPORTED).
    Unsupported,
}

/// A binding path resolved against a profile: which hand, which component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    pub hand: usize,
    pub component: &'static str,
    pub kind: Component,
}

/// Checks `binding` (e.g. `/user/hand/left/input/select/click`, or the shorthand
/// `/user/hand/left/input/select`) against `profile`.
pub fn resolve(profile: &str, binding: &str) -> Result<Binding, BindingError> {
    let (_, comps) = PROFILES
        .iter()
        .find(|(p, _)| *p == profile)
        .ok_or(BindingError::Unsupported)?;
    let (hand, rest) = HANDS
        .iter()
        .enumerate()
        .find_map(|(i, h)| binding.strip_prefix(h).map(|r| (i, r)))
        .ok_or(BindingError::Unsupported)?;
    let rest = rest.strip_prefix('/').ok_or(BindingError::Unsupported)?;
    if let Some(&(c, kind)) = comps.iter().find(|(c, _)| *c == rest) {
        return Ok(Binding {
            hand,
            component: c,
            kind,
        });
    }
    // The shorthand: an identifier without its component picks click, then value.
    for suffix in ["click", "value"] {
        let full = format!("{rest}/{suffix}");
        if let Some(&(c, kind)) = comps.iter().find(|(c, _)| *c == full) {
            return Ok(Binding {
                hand,
                component: c,
                kind,
            });
        }
    }
    Err(BindingError::Unsupported)
}

/// An action's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Boolean(bool),
    Float(f32),
    Vector2([f32; 2]),
    /// Pose actions: active (bound to a tracked input) or not.
    Pose,
    Vibration,
}

/// The value a simple-controller component reads as, for an action of type `t`.
pub fn read(input: &InputState, component: &str, t: ActionType) -> Option<Value> {
    let pressed = match component {
        "input/select/click" => input.select_click,
        "input/menu/click" => input.menu_click,
        "input/grip/pose" | "input/aim/pose" => {
            return (t == ActionType::Pose).then_some(Value::Pose);
        }
        "output/haptic" => return (t == ActionType::Vibration).then_some(Value::Vibration),
        _ => return None,
    };
    match t {
        ActionType::Boolean => Some(Value::Boolean(pressed)),
        ActionType::Float => Some(Value::Float(if pressed { 1.0 } else { 0.0 })),
        _ => None,
    }
}

/// Combines the values of several bound inputs as the specification says: booleans OR,
/// floats and vectors the largest magnitude.
pub fn combine(a: Value, b: Value) -> Value {
    match (a, b) {
        (Value::Boolean(x), Value::Boolean(y)) => Value::Boolean(x || y),
        (Value::Float(x), Value::Float(y)) => Value::Float(if y.abs() > x.abs() { y } else { x }),
        (Value::Vector2(x), Value::Vector2(y)) => {
            let m = |v: [f32; 2]| v[0] * v[0] + v[1] * v[1];
            Value::Vector2(if m(y) > m(x) { y } else { x })
        }
        (a, _) => a,
    }
}

/// One action's state for one subaction path (or the whole action), across syncs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActionState {
    pub value: Value,
    pub changed_since_last_sync: bool,
    pub last_change_ns: i64,
    pub active: bool,
}

impl ActionState {
    pub fn inactive(t: ActionType) -> Self {
        Self {
            value: match t {
                ActionType::Boolean => Value::Boolean(false),
                ActionType::Float => Value::Float(0.0),
                ActionType::Vector2f => Value::Vector2([0.0; 2]),
                ActionType::Pose => Value::Pose,
                ActionType::Vibration => Value::Vibration,
            },
            changed_since_last_sync: false,
            last_change_ns: 0,
            active: false,
        }
    }

    /// The state after a sync that read `value` (`None`: nothing bound is active).
    pub fn sync(&self, t: ActionType, value: Option<Value>, now_ns: i64) -> Self {
        match value {
            None => Self::inactive(t),
            Some(v) => {
                let changed = self.active && v != self.value;
                Self {
                    value: v,
                    changed_since_last_sync: changed,
                    last_change_ns: if changed || !self.active {
                        now_ns
                    } else {
                        self.last_change_ns
                    },
                    active: true,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_resolve_against_their_profile() {
        let b = resolve(SIMPLE_CONTROLLER, "/user/hand/right/input/select/click").unwrap();
        assert_eq!(
            (b.hand, b.component, b.kind),
            (1, "input/select/click", Click)
        );
        // Shorthand.
        let b = resolve(SIMPLE_CONTROLLER, "/user/hand/left/input/select").unwrap();
        assert_eq!(b.component, "input/select/click");
        let b = resolve(
            "/interaction_profiles/oculus/touch_controller",
            "/user/hand/left/input/squeeze",
        )
        .unwrap();
        assert_eq!(b.component, "input/squeeze/value");
        for bad in [
            "/user/hand/left/input/trigger/value",
            "/user/head/input/select/click",
            "/user/hand/leftinput/select/click",
        ] {
            assert_eq!(
                resolve(SIMPLE_CONTROLLER, bad),
                Err(BindingError::Unsupported),
                "{bad}"
            );
        }
        assert_eq!(
            resolve(
                "/interaction_profiles/acme/nothing",
                "/user/hand/left/input/select/click"
            ),
            Err(BindingError::Unsupported)
        );
        assert!(Click.fits(ActionType::Float) && !Pose.fits(ActionType::Boolean));
    }

    #[test]
    fn values_read_combine_and_track_changes() {
        let on = InputState {
            select_click: true,
            ..Default::default()
        };
        assert_eq!(
            read(&on, "input/select/click", ActionType::Boolean),
            Some(Value::Boolean(true))
        );
        assert_eq!(
            read(&on, "input/select/click", ActionType::Float),
            Some(Value::Float(1.0))
        );
        assert_eq!(read(&on, "input/select/click", ActionType::Pose), None);
        assert_eq!(
            combine(Value::Boolean(false), Value::Boolean(true)),
            Value::Boolean(true)
        );
        assert_eq!(
            combine(Value::Float(0.3), Value::Float(-0.7)),
            Value::Float(-0.7)
        );
        let s0 = ActionState::inactive(ActionType::Boolean);
        let s1 = s0.sync(ActionType::Boolean, Some(Value::Boolean(false)), 10);
        assert!(s1.active && !s1.changed_since_last_sync && s1.last_change_ns == 10);
        let s2 = s1.sync(ActionType::Boolean, Some(Value::Boolean(true)), 20);
        assert!(s2.changed_since_last_sync && s2.last_change_ns == 20);
        let s3 = s2.sync(ActionType::Boolean, Some(Value::Boolean(true)), 30);
        assert!(!s3.changed_since_last_sync && s3.last_change_ns == 20);
        let s4 = s3.sync(ActionType::Boolean, None, 40);
        assert!(!s4.active && s4.value == Value::Boolean(false));
    }
}
