//! Action sets and actions in the tree: an instance owns its action sets, a set owns its
//! actions; a session holds what was attached to it.

use super::registry::Children;
use crate::state::action::{ActionState, ActionType, Binding};
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;

/// Suggested bindings by interaction profile: (action, binding path id, resolved binding).
pub(crate) type Suggestions = HashMap<String, Vec<(u64, u64, Binding)>>;

pub(crate) struct ActionSetObj {
    pub(crate) actions: Children<ActionObj>,
    pub(crate) instance: u64,
    pub(crate) name: String,
    pub(crate) localized: String,
    pub(crate) attached: AtomicBool,
}

pub(crate) struct ActionObj {
    pub(crate) set: u64,
    pub(crate) instance: u64,
    pub(crate) name: String,
    pub(crate) localized: String,
    pub(crate) ty: ActionType,
    /// Subaction path ids (of the instance's path table).
    pub(crate) subactions: Vec<u64>,
}

/// A session's attached action sets and what they are bound to.
#[derive(Debug, Default)]
pub(crate) struct Attached {
    pub(crate) sets: Vec<u64>,
    /// The current interaction profile of both hands (path string), when one is bound.
    pub(crate) profile: Option<String>,
    /// Per action: its bindings in the current profile.
    pub(crate) bindings: HashMap<u64, Vec<(u64, Binding)>>,
    /// Per (action, subaction path id or 0 for the whole action).
    pub(crate) states: HashMap<(u64, u64), ActionState>,
    /// The current profile changed and the app has not been told: the event is queued
    /// by the next xrSyncActions, as the specification requires.
    pub(crate) profile_changed: bool,
}
