//! Actions at the ABI: action sets and actions, suggested bindings, attaching to a
//! session, xrSyncActions and the action state getters, bound sources, haptics, and the
//! poses behind action spaces. The rules live in `state::action`.

use super::instance::{instance, lock, path_err};
use super::marshal::{done, guard};
use crate::core::action::{ActionObj, ActionSetObj, Attached, Suggestions};
use crate::core::instance::InstanceNode;
use crate::core::registry::{Children, Kind, REGISTRY};
use crate::core::session::{SessionObj, session, slock};
use crate::state::Event;
use crate::state::action::{self, ActionState, ActionType, HANDS, SIMPLE_CONTROLLER, Value};
use leasehold_drivers::api::{Pose, TrackedDevice};
use openxr_sys as xr;
use openxr_sys::Handle as _;
use std::ffi::c_char;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn set_obj(h: u64) -> Result<Arc<ActionSetObj>, xr::Result> {
    REGISTRY
        .get(Kind::ActionSet, h)
        .ok_or(xr::Result::ERROR_HANDLE_INVALID)
}

fn action_obj(h: u64) -> Option<Arc<ActionObj>> {
    REGISTRY.get(Kind::Action, h)
}

/// The instance's suggested bindings.
fn suggested<R>(instance: u64, f: impl FnOnce(&mut Suggestions) -> R) -> Option<R> {
    let i = crate::core::instance::get(instance)?;
    let mut m = i.suggested.lock().unwrap_or_else(|p| p.into_inner());
    Some(f(&mut m))
}

/// Action names: one path component, lowercase letters, digits, `-`, `_`, `.`.
fn check_name(raw: &[c_char], localized_raw: &[c_char]) -> Result<(String, String), xr::Result> {
    let name = super::marshal::fixed_str(raw)?;
    let localized = super::marshal::fixed_str(localized_raw)?;
    if name.is_empty() {
        return Err(xr::Result::ERROR_NAME_INVALID);
    }
    if !crate::state::path::well_formed(&format!("/{name}")) {
        return Err(xr::Result::ERROR_PATH_FORMAT_INVALID);
    }
    if localized.is_empty() {
        return Err(xr::Result::ERROR_LOCALIZED_NAME_INVALID);
    }
    Ok((name, localized))
}

/// Names and localized names are unique among siblings (the instance's sets, or a set's
/// actions).
fn unique(name: &str, localized: &str, siblings: &[(String, String)]) -> Result<(), xr::Result> {
    if siblings.iter().any(|(n, _)| n == name) {
        return Err(xr::Result::ERROR_NAME_DUPLICATED);
    }
    if siblings.iter().any(|(_, l)| l == localized) {
        return Err(xr::Result::ERROR_LOCALIZED_NAME_DUPLICATED);
    }
    Ok(())
}

pub(super) unsafe extern "system" fn create_action_set(
    h: xr::Instance,
    info: *const xr::ActionSetCreateInfo,
    out: *mut xr::ActionSet,
) -> xr::Result {
    guard("xrCreateActionSet", || {
        done((|| {
            let i = instance(h)?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let info = unsafe { super::marshal::input(info) }?;
            if out.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            let (name, localized) =
                check_name(&info.action_set_name, &info.localized_action_set_name)?;
            let siblings: Vec<(String, String)> = i
                .action_sets
                .snapshot()
                .iter()
                .map(|(_, s)| (s.name.clone(), s.localized.clone()))
                .collect();
            unique(&name, &localized, &siblings)?;
            let (handle, _) = i.action_sets.adopt(ActionSetObj {
                actions: Children::new(Kind::Action),
                instance: h.into_raw(),
                name,
                localized,
                attached: AtomicBool::new(false),
            });
            // SAFETY: checked non-null.
            unsafe { *out = xr::ActionSet::from_raw(handle) };
            Ok(())
        })())
    })
}

pub(super) unsafe extern "system" fn destroy_action_set(h: xr::ActionSet) -> xr::Result {
    guard("xrDestroyActionSet", || {
        // Its actions go with it.
        let removed = set_obj(h.into_raw())
            .ok()
            .and_then(|s| crate::core::instance::get(s.instance))
            .and_then(|i| i.action_sets.remove(h.into_raw()));
        match removed {
            Some(_) => xr::Result::SUCCESS,
            None => xr::Result::ERROR_HANDLE_INVALID,
        }
    })
}

fn action_type(t: xr::ActionType) -> Option<ActionType> {
    Some(match t {
        xr::ActionType::BOOLEAN_INPUT => ActionType::Boolean,
        xr::ActionType::FLOAT_INPUT => ActionType::Float,
        xr::ActionType::VECTOR2F_INPUT => ActionType::Vector2f,
        xr::ActionType::POSE_INPUT => ActionType::Pose,
        xr::ActionType::VIBRATION_OUTPUT => ActionType::Vibration,
        _ => return None,
    })
}

/// Top-level user paths subaction paths may name.
const TOP_LEVEL: [&str; 4] = [
    "/user/hand/left",
    "/user/hand/right",
    "/user/head",
    "/user/gamepad",
];

/// What decides which interaction profiles an instance sees, copied out of its lock.
struct ProfilesSeen {
    api_minor: u16,
    extensions: std::collections::BTreeSet<String>,
}

impl ProfilesSeen {
    fn scope<'a>(&self, enabled: &'a dyn Fn(&str) -> bool) -> action::ProfileScope<'a> {
        action::ProfileScope {
            api_minor: self.api_minor,
            enabled,
        }
    }
}

/// A path's string, and what the instance sees of the interaction profiles.
fn path_and_profiles(
    i: &InstanceNode,
    path: xr::Path,
) -> Result<(String, ProfilesSeen), xr::Result> {
    let inst = lock(i);
    let name = inst
        .paths
        .name(path.into_raw())
        .map_err(path_err)?
        .to_string();
    Ok((
        name,
        ProfilesSeen {
            api_minor: inst.api_version.1,
            extensions: inst.extensions.clone(),
        },
    ))
}

/// A top-level user path an instance may name: the core ones, and the eyes with
/// XR_EXT_eye_gaze_interaction.
fn top_level_path(inst: &crate::state::Instance, path: &str) -> bool {
    TOP_LEVEL.contains(&path)
        || (path == "/user/eyes_ext" && inst.enabled("XR_EXT_eye_gaze_interaction"))
}

pub(super) unsafe extern "system" fn create_action(
    set_h: xr::ActionSet,
    info: *const xr::ActionCreateInfo,
    out: *mut xr::Action,
) -> xr::Result {
    guard("xrCreateAction", || {
        done((|| {
            let set = set_obj(set_h.into_raw())?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let info = unsafe { super::marshal::input(info) }?;
            if out.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            if set.attached.load(Ordering::Acquire) {
                return Err(xr::Result::ERROR_ACTIONSETS_ALREADY_ATTACHED);
            }
            let (name, localized) = check_name(&info.action_name, &info.localized_action_name)?;
            let ty = action_type(info.action_type).ok_or(xr::Result::ERROR_VALIDATION_FAILURE)?;
            let siblings: Vec<(String, String)> = set
                .actions
                .snapshot()
                .iter()
                .map(|(_, a)| (a.name.clone(), a.localized.clone()))
                .collect();
            unique(&name, &localized, &siblings)?;
            // SAFETY: an array of `count_subaction_paths` paths by contract.
            let paths = unsafe {
                super::marshal::array(info.subaction_paths, info.count_subaction_paths, true)
            }?;
            let mut subactions = Vec::with_capacity(paths.len());
            {
                let inst = crate::core::instance::get(set.instance)
                    .ok_or(xr::Result::ERROR_HANDLE_INVALID)?;
                let inst = lock(&inst);
                for p in paths {
                    let s = inst.paths.name(p.into_raw()).map_err(path_err)?;
                    if !top_level_path(&inst, s) {
                        return Err(xr::Result::ERROR_PATH_UNSUPPORTED);
                    }
                    if subactions.contains(&p.into_raw()) {
                        return Err(xr::Result::ERROR_PATH_UNSUPPORTED);
                    }
                    subactions.push(p.into_raw());
                }
            }
            let (handle, _) = set.actions.adopt(ActionObj {
                set: set_h.into_raw(),
                instance: set.instance,
                name,
                localized,
                ty,
                subactions,
            });
            // SAFETY: checked non-null.
            unsafe { *out = xr::Action::from_raw(handle) };
            Ok(())
        })())
    })
}

pub(super) unsafe extern "system" fn destroy_action(h: xr::Action) -> xr::Result {
    guard("xrDestroyAction", || {
        let removed = action_obj(h.into_raw())
            .and_then(|a| set_obj(a.set).ok())
            .and_then(|s| s.actions.remove(h.into_raw()));
        match removed {
            Some(_) => xr::Result::SUCCESS,
            None => xr::Result::ERROR_HANDLE_INVALID,
        }
    })
}

pub(super) unsafe extern "system" fn suggest_interaction_profile_bindings(
    h: xr::Instance,
    info: *const xr::InteractionProfileSuggestedBinding,
) -> xr::Result {
    guard("xrSuggestInteractionProfileBindings", || {
        done((|| {
            let i = instance(h)?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let info = unsafe { super::marshal::input(info) }?;
            // SAFETY: an array of `count_suggested_bindings` by contract.
            let bindings = unsafe {
                super::marshal::array(
                    info.suggested_bindings,
                    info.count_suggested_bindings,
                    false,
                )
            }?;
            let any_attached = i
                .action_sets
                .snapshot()
                .iter()
                .any(|(_, s)| s.attached.load(Ordering::Acquire));
            if any_attached {
                return Err(xr::Result::ERROR_ACTIONSETS_ALREADY_ATTACHED);
            }
            let (profile, seen) = path_and_profiles(&i, info.interaction_profile)?;
            let enabled = |e: &str| seen.extensions.contains(e);
            let scope = seen.scope(&enabled);
            let mut resolved = Vec::with_capacity(bindings.len());
            for b in bindings {
                let a = action_obj(b.action.into_raw()).ok_or(xr::Result::ERROR_HANDLE_INVALID)?;
                if a.instance != h.into_raw() {
                    return Err(xr::Result::ERROR_HANDLE_INVALID);
                }
                let path = lock(&i)
                    .paths
                    .name(b.binding.into_raw())
                    .map_err(path_err)?
                    .to_string();
                let r = action::resolve_for(&profile, &path, &scope, Some(a.ty)).map_err(|_| {
                    tracing::warn!(%profile, binding = %path, "unsupported binding suggested");
                    xr::Result::ERROR_PATH_UNSUPPORTED
                })?;
                // A binding of a user path no device here has (a head, a gamepad) is
                // valid and drives nothing.
                if let Some(r) = r {
                    resolved.push((b.action.into_raw(), b.binding.into_raw(), r));
                }
            }
            tracing::debug!(%profile, bindings = resolved.len(), "bindings suggested");
            suggested(h.into_raw(), |m| m.insert(profile, resolved));
            Ok(())
        })())
    })
}

pub(super) unsafe extern "system" fn attach_session_action_sets(
    h: xr::Session,
    info: *const xr::SessionActionSetsAttachInfo,
) -> xr::Result {
    guard("xrAttachSessionActionSets", || {
        done((|| {
            let s = session(h)?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let info = unsafe { super::marshal::input(info) }?;
            // SAFETY: an array of `count_action_sets` by contract.
            let sets =
                unsafe { super::marshal::array(info.action_sets, info.count_action_sets, false) }?;
            let mut s = slock(&s);
            if s.actions.is_some() {
                return Err(xr::Result::ERROR_ACTIONSETS_ALREADY_ATTACHED);
            }
            let mut objs = Vec::with_capacity(sets.len());
            for set in sets {
                let o = set_obj(set.into_raw())?;
                if o.instance != s.instance {
                    return Err(xr::Result::ERROR_HANDLE_INVALID);
                }
                objs.push((set.into_raw(), o));
            }
            for (_, o) in &objs {
                o.attached.store(true, Ordering::Release);
            }
            let set_ids: Vec<u64> = objs.iter().map(|(h, _)| *h).collect();
            // The profile the drivers' controllers offer, if the app bound anything to it.
            let simple = suggested(s.instance, |m| m.get(SIMPLE_CONTROLLER).cloned()).flatten();
            let mut attached = Attached {
                sets: set_ids.clone(),
                ..Default::default()
            };
            if let Some(list) = simple {
                attached.profile = Some(SIMPLE_CONTROLLER.to_string());
                for (a, path, b) in list {
                    let Some(obj) = action_obj(a) else { continue };
                    if set_ids.contains(&obj.set) && b.kind.fits(obj.ty) {
                        attached.bindings.entry(a).or_default().push((path, b));
                    }
                }
            }
            attached.profile_changed = attached.profile.is_some();
            tracing::info!(sets = set_ids.len(), profile = ?attached.profile, "action sets attached");
            s.actions = Some(attached);
            Ok(())
        })())
    })
}

pub(super) unsafe extern "system" fn get_current_interaction_profile(
    h: xr::Session,
    top_level: xr::Path,
    out: *mut xr::InteractionProfileState,
) -> xr::Result {
    guard("xrGetCurrentInteractionProfile", || {
        done((|| {
            let s = session(h)?;
            // SAFETY: the app passes a writable structure, or null (refused).
            let out = unsafe { super::marshal::output(out) }?;
            let s = slock(&s);
            let i =
                crate::core::instance::get(s.instance).ok_or(xr::Result::ERROR_HANDLE_INVALID)?;
            let mut inst = lock(&i);
            let user = inst
                .paths
                .name(top_level.into_raw())
                .map_err(path_err)?
                .to_string();
            if !top_level_path(&inst, &user) {
                return Err(xr::Result::ERROR_PATH_UNSUPPORTED);
            }
            let a = s
                .actions
                .as_ref()
                .ok_or(xr::Result::ERROR_ACTIONSET_NOT_ATTACHED)?;
            out.interaction_profile = match &a.profile {
                Some(p) if HANDS.contains(&user.as_str()) => {
                    xr::Path::from_raw(inst.paths.intern(p).map_err(path_err)?)
                }
                _ => xr::Path::NULL,
            };
            Ok(())
        })())
    })
}

/// The subaction path ids of an action that exist for `hand`.
fn hand_path(inst_paths: &crate::state::PathTable, id: u64) -> Option<usize> {
    let n = inst_paths.name(id).ok()?;
    HANDS.iter().position(|h| *h == n)
}

pub(super) unsafe extern "system" fn sync_actions(
    h: xr::Session,
    info: *const xr::ActionsSyncInfo,
) -> xr::Result {
    guard("xrSyncActions", || {
        let r = (|| {
            let s = session(h)?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let info = unsafe { super::marshal::input(info) }?;
            // SAFETY: an array of `count_active_action_sets` by contract.
            let active = unsafe {
                super::marshal::array(info.active_action_sets, info.count_active_action_sets, true)
            }?;
            let mut guard_s = slock(&s);
            let s: &mut SessionObj = &mut guard_s;
            s.alive()?;
            let focused = s.is_focused();
            let inputs = [s.controllers[0].inputs(), s.controllers[1].inputs()];
            let instance = s.instance;
            let Some(att) = s.actions.as_mut() else {
                return Err(xr::Result::ERROR_ACTIONSET_NOT_ATTACHED);
            };

            for a in active {
                if !att.sets.contains(&a.action_set.into_raw()) {
                    return Err(if set_obj(a.action_set.into_raw()).is_ok() {
                        xr::Result::ERROR_ACTIONSET_NOT_ATTACHED
                    } else {
                        xr::Result::ERROR_HANDLE_INVALID
                    });
                }
            }
            let i = crate::core::instance::get(instance).ok_or(xr::Result::ERROR_HANDLE_INVALID)?;
            let mut inst = lock(&i);
            // The current profile changed since the app last synced: the event comes
            // with this (valid) sync, as the specification requires.
            if std::mem::take(&mut att.profile_changed) {
                inst.events.push_back(Event::InteractionProfileChanged {
                    session: h.into_raw(),
                });
            }
            let now = crate::core::session::now_ns() as i64;
            let mut actions = Vec::new();
            for set in att.sets.iter().filter_map(|h| set_obj(*h).ok()) {
                for (handle, a) in set.actions.snapshot() {
                    actions.push((handle, a.set, a.ty, a.subactions.clone()));
                }
            }
            for (handle, set, ty, subs) in actions {
                // Active: its set is in the list, for all subaction paths or the one named.
                let filter: Option<Vec<u64>> = active
                    .iter()
                    .filter(|x| x.action_set.into_raw() == set)
                    .map(|x| x.subaction_path.into_raw())
                    .try_fold(Vec::new(), |mut v, p| {
                        if p == 0 {
                            None
                        } else {
                            v.push(p);
                            Some(v)
                        }
                    });
                let set_active = active.iter().any(|x| x.action_set.into_raw() == set);
                let bindings = att.bindings.get(&handle).cloned().unwrap_or_default();
                let value_for = |hand: Option<usize>| -> Option<Value> {
                    if !focused || !set_active {
                        return None;
                    }
                    let mut v: Option<Value> = None;
                    for (_, b) in &bindings {
                        if hand.is_some_and(|h| h != b.hand) {
                            continue;
                        }
                        if let Some(f) = &filter {
                            let allowed = f
                                .iter()
                                .any(|p| inst.paths.name(*p).ok() == Some(HANDS[b.hand]));
                            if !allowed {
                                continue;
                            }
                        }
                        if let Some(x) = action::read(&inputs[b.hand], b.component, ty) {
                            v = Some(match v {
                                Some(y) => action::combine(y, x),
                                None => x,
                            });
                        }
                    }
                    v
                };
                let mut keys = vec![(0u64, None)];
                for p in &subs {
                    keys.push((*p, hand_path(&inst.paths, *p)));
                }
                for (p, hand) in keys {
                    // A subaction path that is not a hand (head, gamepad) has no inputs.
                    let v = if p != 0 && hand.is_none() {
                        None
                    } else {
                        value_for(hand)
                    };
                    let prev = att
                        .states
                        .get(&(handle, p))
                        .copied()
                        .unwrap_or_else(|| ActionState::inactive(ty));
                    att.states.insert((handle, p), prev.sync(ty, v, now));
                }
            }
            Ok(if focused {
                xr::Result::SUCCESS
            } else {
                xr::Result::SESSION_NOT_FOCUSED
            })
        })();
        r.unwrap_or_else(|e| e)
    })
}

/// The state of the action named by `info`, checked: handle, type, attachment, and the
/// subaction path being one of the action's.
fn state_of(
    h: xr::Session,
    info: *const xr::ActionStateGetInfo,
    want: &[ActionType],
) -> Result<ActionState, xr::Result> {
    let s = session(h)?;
    // SAFETY: the app passes a valid structure, or null (refused).
    let info = unsafe { super::marshal::input(info) }?;
    let a = action_obj(info.action.into_raw()).ok_or(xr::Result::ERROR_HANDLE_INVALID)?;
    let s = slock(&s);
    if a.instance != s.instance {
        return Err(xr::Result::ERROR_HANDLE_INVALID);
    }
    if !want.contains(&a.ty) {
        return Err(xr::Result::ERROR_ACTION_TYPE_MISMATCH);
    }
    let att = s
        .actions
        .as_ref()
        .filter(|att| att.sets.contains(&a.set))
        .ok_or(xr::Result::ERROR_ACTIONSET_NOT_ATTACHED)?;
    let sub = info.subaction_path.into_raw();
    check_subaction(&a, s.instance, sub)?;
    Ok(att
        .states
        .get(&(info.action.into_raw(), sub))
        .copied()
        .unwrap_or_else(|| ActionState::inactive(a.ty)))
}

/// An action state getter: checks the output structure and the action, then fills it.
fn getter<T: super::marshal::Typed>(
    name: &'static str,
    h: xr::Session,
    info: *const xr::ActionStateGetInfo,
    out: *mut T,
    ty: ActionType,
    fill: impl FnOnce(&mut T, &ActionState),
) -> xr::Result {
    guard(name, || {
        done((|| {
            // SAFETY: the app passes a writable structure, or null (refused).
            let out = unsafe { super::marshal::output(out) }?;
            let st = state_of(h, info, &[ty])?;
            fill(out, &st);
            Ok(())
        })())
    })
}

pub(super) unsafe extern "system" fn get_action_state_boolean(
    h: xr::Session,
    info: *const xr::ActionStateGetInfo,
    out: *mut xr::ActionStateBoolean,
) -> xr::Result {
    getter(
        "xrGetActionStateBoolean",
        h,
        info,
        out,
        ActionType::Boolean,
        |o, st| {
            o.current_state = matches!(st.value, Value::Boolean(true)).into();
            o.changed_since_last_sync = st.changed_since_last_sync.into();
            o.last_change_time = xr::Time::from_nanos(st.last_change_ns);
            o.is_active = st.active.into();
        },
    )
}

pub(super) unsafe extern "system" fn get_action_state_float(
    h: xr::Session,
    info: *const xr::ActionStateGetInfo,
    out: *mut xr::ActionStateFloat,
) -> xr::Result {
    getter(
        "xrGetActionStateFloat",
        h,
        info,
        out,
        ActionType::Float,
        |o, st| {
            o.current_state = match st.value {
                Value::Float(f) => f,
                _ => 0.0,
            };
            o.changed_since_last_sync = st.changed_since_last_sync.into();
            o.last_change_time = xr::Time::from_nanos(st.last_change_ns);
            o.is_active = st.active.into();
        },
    )
}

pub(super) unsafe extern "system" fn get_action_state_vector2f(
    h: xr::Session,
    info: *const xr::ActionStateGetInfo,
    out: *mut xr::ActionStateVector2f,
) -> xr::Result {
    getter(
        "xrGetActionStateVector2f",
        h,
        info,
        out,
        ActionType::Vector2f,
        |o, st| {
            let v = match st.value {
                Value::Vector2(v) => v,
                _ => [0.0; 2],
            };
            o.current_state = xr::Vector2f { x: v[0], y: v[1] };
            o.changed_since_last_sync = st.changed_since_last_sync.into();
            o.last_change_time = xr::Time::from_nanos(st.last_change_ns);
            o.is_active = st.active.into();
        },
    )
}

pub(super) unsafe extern "system" fn get_action_state_pose(
    h: xr::Session,
    info: *const xr::ActionStateGetInfo,
    out: *mut xr::ActionStatePose,
) -> xr::Result {
    getter(
        "xrGetActionStatePose",
        h,
        info,
        out,
        ActionType::Pose,
        |o, st| o.is_active = st.active.into(),
    )
}

fn haptic(h: xr::Session, info: *const xr::HapticActionInfo) -> Result<(), xr::Result> {
    let s = session(h)?;
    // SAFETY: the app passes a valid structure, or null (refused).
    let info = unsafe { super::marshal::input(info) }?;
    let a = action_obj(info.action.into_raw()).ok_or(xr::Result::ERROR_HANDLE_INVALID)?;
    let s = slock(&s);
    if a.instance != s.instance {
        return Err(xr::Result::ERROR_HANDLE_INVALID);
    }
    if a.ty != ActionType::Vibration {
        return Err(xr::Result::ERROR_ACTION_TYPE_MISMATCH);
    }
    if !s
        .actions
        .as_ref()
        .is_some_and(|att| att.sets.contains(&a.set))
    {
        return Err(xr::Result::ERROR_ACTIONSET_NOT_ATTACHED);
    }
    let sub = info.subaction_path.into_raw();
    check_subaction(&a, s.instance, sub)?;
    Ok(())
}

pub(super) unsafe extern "system" fn apply_haptic_feedback(
    h: xr::Session,
    info: *const xr::HapticActionInfo,
    feedback: *const xr::HapticBaseHeader,
) -> xr::Result {
    guard("xrApplyHapticFeedback", || {
        done((|| {
            haptic(h, info)?;
            if feedback.is_null() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            // SAFETY: non-null; every haptic structure starts with its type.
            let ty = unsafe { (*feedback).ty };
            if ty != xr::StructureType::HAPTIC_VIBRATION {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            // The simulated controllers have no actuator; a real driver takes it here.
            tracing::trace!("haptic pulse");
            Ok(())
        })())
    })
}

pub(super) unsafe extern "system" fn stop_haptic_feedback(
    h: xr::Session,
    info: *const xr::HapticActionInfo,
) -> xr::Result {
    guard("xrStopHapticFeedback", || done(haptic(h, info)))
}

/// The full binding paths an action is bound to in the current profile.
pub(super) unsafe extern "system" fn enumerate_bound_sources_for_action(
    h: xr::Session,
    info: *const xr::BoundSourcesForActionEnumerateInfo,
    capacity: u32,
    count_out: *mut u32,
    out: *mut xr::Path,
) -> xr::Result {
    guard("xrEnumerateBoundSourcesForAction", || {
        done((|| {
            let s = session(h)?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let info = unsafe { super::marshal::input(info) }?;
            let a = action_obj(info.action.into_raw()).ok_or(xr::Result::ERROR_HANDLE_INVALID)?;
            let s = slock(&s);
            let att = s
                .actions
                .as_ref()
                .filter(|att| att.sets.contains(&a.set))
                .ok_or(xr::Result::ERROR_ACTIONSET_NOT_ATTACHED)?;
            let paths: Vec<u64> = att
                .bindings
                .get(&info.action.into_raw())
                .map(|v| v.iter().map(|(p, _)| *p).collect())
                .unwrap_or_default();
            // SAFETY: the two-call contract of the entry point.
            unsafe {
                super::marshal::two_call(&paths, capacity, count_out, out, |o, p| {
                    *o = xr::Path::from_raw(*p);
                    Ok(())
                })
            }
        })())
    })
}

fn title(s: &str) -> String {
    s.split(['/', '_'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) unsafe extern "system" fn get_input_source_localized_name(
    h: xr::Session,
    info: *const xr::InputSourceLocalizedNameGetInfo,
    capacity: u32,
    count_out: *mut u32,
    buffer: *mut c_char,
) -> xr::Result {
    guard("xrGetInputSourceLocalizedName", || {
        done((|| {
            let s = session(h)?;
            // SAFETY: the app passes a valid structure, or null (refused).
            let info = unsafe { super::marshal::input(info) }?;
            let all = xr::InputSourceLocalizedNameFlags::USER_PATH
                | xr::InputSourceLocalizedNameFlags::INTERACTION_PROFILE
                | xr::InputSourceLocalizedNameFlags::COMPONENT;
            if info.which_components.is_empty() || !(info.which_components & !all).is_empty() {
                return Err(xr::Result::ERROR_VALIDATION_FAILURE);
            }
            let s = slock(&s);
            let att = s
                .actions
                .as_ref()
                .ok_or(xr::Result::ERROR_ACTIONSET_NOT_ATTACHED)?;
            let i =
                crate::core::instance::get(s.instance).ok_or(xr::Result::ERROR_HANDLE_INVALID)?;
            let (source, seen) = path_and_profiles(&i, info.source_path)?;
            let enabled = |e: &str| seen.extensions.contains(e);
            let scope = seen.scope(&enabled);
            let profile = att
                .profile
                .clone()
                .ok_or(xr::Result::ERROR_PATH_UNSUPPORTED)?;
            let b = action::resolve(&profile, &source, &scope)
                .ok()
                .flatten()
                .ok_or(xr::Result::ERROR_PATH_UNSUPPORTED)?;
            let mut parts = Vec::new();
            let w = info.which_components;
            if w.contains(xr::InputSourceLocalizedNameFlags::USER_PATH) {
                parts.push(
                    if b.hand == 0 {
                        "Left Hand"
                    } else {
                        "Right Hand"
                    }
                    .to_string(),
                );
            }
            if w.contains(xr::InputSourceLocalizedNameFlags::INTERACTION_PROFILE) {
                let name = action::profiles()
                    .iter()
                    .find(|p| p.path == profile)
                    .map_or_else(|| profile.clone(), |p| p.title.clone());
                parts.push(name);
            }
            if w.contains(xr::InputSourceLocalizedNameFlags::COMPONENT) {
                parts.push(title(
                    b.component
                        .trim_start_matches("input/")
                        .trim_start_matches("output/"),
                ));
            }
            let mut bytes = parts.join(" ").into_bytes();
            bytes.push(0);
            // SAFETY: the two-call contract of the entry point.
            unsafe {
                super::marshal::two_call(&bytes, capacity, count_out, buffer, |o, c| {
                    *o = *c as c_char;
                    Ok(())
                })
            }
        })())
    })
}

/// Checks a subaction path given with an action: none (0), or one of the action's.
/// A number that is no path at all is XR_ERROR_PATH_INVALID; a path the action was not
/// created with, XR_ERROR_PATH_UNSUPPORTED.
fn check_subaction(a: &ActionObj, instance: u64, sub: u64) -> Result<(), xr::Result> {
    if sub == 0 || a.subactions.contains(&sub) {
        return Ok(());
    }
    let i = crate::core::instance::get(instance).ok_or(xr::Result::ERROR_HANDLE_INVALID)?;
    lock(&i).paths.name(sub).map_err(path_err)?;
    Err(xr::Result::ERROR_PATH_UNSUPPORTED)
}

/// A pose action's action: checked for xrCreateActionSpace.
pub(super) fn pose_action(
    s: &SessionObj,
    action: xr::Action,
    subaction: xr::Path,
) -> Result<(), xr::Result> {
    let a = action_obj(action.into_raw()).ok_or(xr::Result::ERROR_HANDLE_INVALID)?;
    if a.instance != s.instance {
        return Err(xr::Result::ERROR_HANDLE_INVALID);
    }
    if a.ty != ActionType::Pose {
        return Err(xr::Result::ERROR_ACTION_TYPE_MISMATCH);
    }
    check_subaction(&a, s.instance, subaction.into_raw())?;
    Ok(())
}

/// Where an action space's pose input is in the world frame at `time_ns`: the bound
/// controller's grip/aim pose while the action is active, else `None` (untracked).
pub(super) fn action_pose(
    s: &SessionObj,
    action: u64,
    subaction: u64,
    time_ns: u64,
) -> Option<Pose> {
    let att = s.actions.as_ref()?;
    let st = att.states.get(&(action, subaction))?;
    if !st.active {
        return None;
    }
    let i = crate::core::instance::get(s.instance)?;
    let hand = if subaction == 0 {
        None
    } else {
        Some(hand_path(&lock(&i).paths, subaction)?)
    };
    let b = att
        .bindings
        .get(&action)?
        .iter()
        .map(|(_, b)| b)
        .find(|b| hand.is_none_or(|h| h == b.hand))?;
    let p = s.controllers[b.hand].pose_at(time_ns).ok()?;
    Some(if b.component == "input/aim/pose" {
        // The aim ray leaves the controller's tip, tilted down from the grip.
        p.pose.compose(&Pose {
            orientation: glam::Quat::from_rotation_x(-0.6),
            position: glam::Vec3::new(0.0, 0.0, -0.05),
        })
    } else {
        p.pose
    })
}
