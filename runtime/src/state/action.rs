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

/// One interaction profile the specification defines.
#[derive(Debug)]
pub struct Profile {
    pub path: String,
    pub title: String,
    /// The OpenXR minor version (of 1.x) that defines it.
    pub since: u16,
    pub users: Vec<String>,
    pub components: Vec<ProfileComponent>,
    /// The extension an instance must enable to use it (`None`: core).
    pub requires: Option<String>,
}

/// A component of a profile: `input/trigger/value` and what it is.
#[derive(Debug)]
pub struct ProfileComponent {
    /// Without the leading `/`, as bindings name it after the user path.
    pub subpath: String,
    pub kind: Component,
    pub since: u16,
    /// The one user path that has it; `None`: all of the profile's.
    pub user: Option<String>,
}

/// The interaction profiles of the OpenXR 1.0 and 1.1 core specification (from its
/// registry, `manifests/openxr/interaction_profiles.toml`), read once.
pub fn profiles() -> &'static [Profile] {
    static PROFILES: std::sync::OnceLock<Vec<Profile>> = std::sync::OnceLock::new();
    PROFILES.get_or_init(|| {
        parse_profiles(include_str!(
            "../../../manifests/openxr/interaction_profiles.toml"
        ))
        .expect("the bundled interaction profile table parses")
    })
}

fn minor(v: &str) -> Result<u16, String> {
    match v {
        "1.0" => Ok(0),
        "1.1" => Ok(1),
        _ => Err(format!("unknown OpenXR version {v:?}")),
    }
}

/// What a component is, from its action type and the last element of its path.
fn component_kind(subpath: &str, ty: &str) -> Result<Component, String> {
    let last = subpath.rsplit('/').next().unwrap_or_default();
    Ok(match ty {
        "boolean" if last == "touch" => Touch,
        "boolean" => Click,
        "float" if last == "force" => Force,
        "float" => Value,
        "vector2f" => Vector2,
        "pose" => Pose,
        "vibration" => Haptic,
        _ => return Err(format!("{subpath}: unknown action type {ty:?}")),
    })
}

/// Parses the interaction profile table (the format of
/// `manifests/openxr/interaction_profiles.toml`).
pub fn parse_profiles(text: &str) -> Result<Vec<Profile>, String> {
    let doc: toml::Table = text.parse().map_err(|e| format!("{e}"))?;
    let list = doc
        .get("profile")
        .and_then(|v| v.as_array())
        .ok_or("no [[profile]] entries")?;
    let str_of = |t: &toml::Table, k: &str| -> Result<String, String> {
        t.get(k)
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or(format!("a profile without `{k}`"))
    };
    let mut out = Vec::with_capacity(list.len());
    for v in list {
        let t = v.as_table().ok_or("a profile that is not a table")?;
        let path = str_of(t, "path")?;
        let users = t
            .get("users")
            .and_then(|v| v.as_array())
            .ok_or(format!("{path}: no users"))?
            .iter()
            .map(|u| u.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or(format!("{path}: users are not strings"))?;
        let mut components = Vec::new();
        for c in t
            .get("components")
            .and_then(|v| v.as_array())
            .ok_or(format!("{path}: no components"))?
        {
            let f: Vec<&str> = c
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
                .unwrap_or_default();
            let [sub, ty, since, user] = f[..] else {
                return Err(format!(
                    "{path}: a component is not [subpath, type, since, user]"
                ));
            };
            let subpath = sub
                .strip_prefix('/')
                .ok_or(format!("{path}: {sub} does not start with /"))?
                .to_string();
            components.push(ProfileComponent {
                kind: component_kind(&subpath, ty)?,
                subpath,
                since: minor(since)?,
                user: (!user.is_empty()).then(|| user.to_string()),
            });
        }
        out.push(Profile {
            requires: t
                .get("requires")
                .and_then(|v| v.as_str())
                .map(str::to_string),
            title: str_of(t, "title")?,
            since: minor(&str_of(t, "since")?)?,
            path,
            users,
            components,
        });
    }
    Ok(out)
}

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

/// What an instance sees of the profiles: its OpenXR minor version and the extensions
/// it enabled.
pub struct ProfileScope<'a> {
    pub api_minor: u16,
    pub enabled: &'a dyn Fn(&str) -> bool,
}

impl std::fmt::Debug for ProfileScope<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileScope")
            .field("api_minor", &self.api_minor)
            .finish_non_exhaustive()
    }
}

/// Checks `binding` (e.g. `/user/hand/left/input/select/click`, or the shorthand
/// `/user/hand/left/input/select`) against `profile`, as an instance in `scope` sees the
/// profiles. `Ok(None)`: a valid binding of a user path no device here has yet (a head's,
/// a gamepad's, eyes'), kept inert.
pub fn resolve(
    profile: &str,
    binding: &str,
    scope: &ProfileScope,
) -> Result<Option<Binding>, BindingError> {
    resolve_for(profile, binding, scope, None)
}

/// [`resolve`] for an action of type `for_type`: the shorthand picks the component that
/// type reads best, as the specification orders them (a boolean action: click, then
/// value; a float action: value, then click; a pose action: pose).
pub fn resolve_for(
    profile: &str,
    binding: &str,
    scope: &ProfileScope,
    for_type: Option<ActionType>,
) -> Result<Option<Binding>, BindingError> {
    let api_minor = scope.api_minor;
    let p = profiles()
        .iter()
        .find(|p| {
            p.path == profile
                && p.since <= api_minor
                && p.requires.as_deref().is_none_or(|e| (scope.enabled)(e))
        })
        .ok_or(BindingError::Unsupported)?;
    let (user, rest) = p
        .users
        .iter()
        .find_map(|u| {
            binding
                .strip_prefix(u.as_str())
                .and_then(|r| r.strip_prefix('/'))
                .map(|r| (u.as_str(), r))
        })
        .ok_or(BindingError::Unsupported)?;
    let find = |sub: &str| {
        p.components.iter().find(|c| {
            c.subpath == sub && c.since <= api_minor && c.user.as_deref().is_none_or(|u| u == user)
        })
    };
    // The shorthand: an identifier without its component picks by the action's type
    // (without one: click, then value, then pose).
    let order: &[&str] = match for_type {
        Some(ActionType::Float) => &["value", "click", "force"],
        Some(ActionType::Boolean) => &["click", "value", "force"],
        Some(ActionType::Pose) => &["pose"],
        _ => &["click", "value", "pose"],
    };
    let c = find(rest)
        .or_else(|| {
            order
                .iter()
                .find_map(|suffix| find(&format!("{rest}/{suffix}")))
        })
        .ok_or(BindingError::Unsupported)?;
    Ok(HANDS.iter().position(|h| *h == user).map(|hand| Binding {
        hand,
        component: c.subpath.as_str(),
        kind: c.kind,
    }))
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

    fn none(_: &str) -> bool {
        false
    }

    fn v10() -> ProfileScope<'static> {
        ProfileScope {
            api_minor: 0,
            enabled: &none,
        }
    }

    fn v11() -> ProfileScope<'static> {
        ProfileScope {
            api_minor: 1,
            enabled: &none,
        }
    }

    #[test]
    fn bindings_resolve_against_their_profile() {
        let r = |p: &str, b: &str| resolve(p, b, &v10()).map(|b| b.unwrap());
        let b = r(SIMPLE_CONTROLLER, "/user/hand/right/input/select/click").unwrap();
        assert_eq!(
            (b.hand, b.component, b.kind),
            (1, "input/select/click", Click)
        );
        // Shorthand.
        let b = r(SIMPLE_CONTROLLER, "/user/hand/left/input/select").unwrap();
        assert_eq!(b.component, "input/select/click");
        let touch = "/interaction_profiles/oculus/touch_controller";
        let b = r(touch, "/user/hand/left/input/squeeze").unwrap();
        assert_eq!((b.component, b.kind), ("input/squeeze/value", Value));
        let b = r(SIMPLE_CONTROLLER, "/user/hand/left/input/grip").unwrap();
        assert_eq!(b.component, "input/grip/pose");
        // The shorthand by the action's type: a trigger with click and value.
        let index = "/interaction_profiles/valve/index_controller";
        let by = |t| {
            resolve_for(index, "/user/hand/left/input/trigger", &v10(), Some(t))
                .unwrap()
                .unwrap()
                .component
        };
        assert_eq!(by(ActionType::Boolean), "input/trigger/click");
        assert_eq!(by(ActionType::Float), "input/trigger/value");
        // X and Y are the left controller's, A and B the right one's.
        assert!(r(touch, "/user/hand/left/input/x/click").is_ok());
        assert!(r(touch, "/user/hand/right/input/x/click").is_err());
        assert!(r(touch, "/user/hand/right/input/a/touch").is_ok_and(|b| b.kind == Touch));
        for bad in [
            "/user/hand/left/input/trigger/value",
            "/user/head/input/select/click",
            "/user/hand/leftinput/select/click",
            "/user/hand/left",
            "/user/hand/right/input/select/click/invalid",
        ] {
            assert_eq!(
                resolve(SIMPLE_CONTROLLER, bad, &v11()),
                Err(BindingError::Unsupported),
                "{bad}"
            );
        }
        assert_eq!(
            resolve(
                "/interaction_profiles/acme/nothing",
                "/user/hand/left/input/select/click",
                &v11()
            ),
            Err(BindingError::Unsupported)
        );
        assert!(Click.fits(ActionType::Float) && !Pose.fits(ActionType::Boolean));
    }

    #[test]
    fn the_specifications_profiles_by_version() {
        let all = profiles();
        let core = |p: &&Profile| p.requires.is_none();
        assert_eq!(
            all.iter().filter(core).filter(|p| p.since == 0).count(),
            9,
            "1.0 profiles"
        );
        assert!(all.len() > 9, "1.1 adds profiles");
        for p in all {
            assert!(
                !p.users.is_empty() && !p.components.is_empty(),
                "{}",
                p.path
            );
        }
        // A head's and a gamepad's inputs are valid and inert.
        assert_eq!(
            resolve(
                "/interaction_profiles/htc/vive_pro",
                "/user/head/input/system/click",
                &v10()
            ),
            Ok(None)
        );
        assert_eq!(
            resolve(
                "/interaction_profiles/microsoft/xbox_controller",
                "/user/gamepad/input/thumbstick_left",
                &v10()
            ),
            Ok(None)
        );
        // What 1.1 added exists for 1.1 instances only.
        let grip_surface = "/user/hand/left/input/grip_surface/pose";
        assert!(resolve(SIMPLE_CONTROLLER, grip_surface, &v10()).is_err());
        assert!(resolve(SIMPLE_CONTROLLER, grip_surface, &v11()).is_ok());
        let odyssey = "/interaction_profiles/samsung/odyssey_controller";
        assert!(resolve(odyssey, "/user/hand/left/input/menu/click", &v10()).is_err());
        assert!(resolve(odyssey, "/user/hand/left/input/menu/click", &v11()).is_ok());
        // Every component of every core profile resolves for its own user paths.
        for p in all.iter().filter(core) {
            for c in &p.components {
                for u in &p.users {
                    if c.user.as_deref().is_some_and(|cu| cu != u) {
                        continue;
                    }
                    let path = format!("{u}/{}", c.subpath);
                    assert!(resolve(&p.path, &path, &v11()).is_ok(), "{} {path}", p.path);
                }
            }
        }
        assert!(parse_profiles("[[profile]]\npath = 1").is_err());
        // An extension's profile exists for instances that enabled the extension.
        let gaze = "/interaction_profiles/ext/eye_gaze_interaction";
        let pose = "/user/eyes_ext/input/gaze_ext/pose";
        assert!(resolve(gaze, pose, &v11()).is_err());
        let with_gaze = ProfileScope {
            api_minor: 0,
            enabled: &|e: &str| e == "XR_EXT_eye_gaze_interaction",
        };
        assert_eq!(resolve(gaze, pose, &with_gaze), Ok(None), "valid and inert");
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
