//! Core OpenXR functions whose objects (sessions, swapchains, spaces, actions, the frame
//! loop) Leasehold does not provide yet. Applications and the loader resolve every core
//! function up front, so each exists; calling one fails clearly with
//! XR_ERROR_FUNCTION_UNSUPPORTED (logged once per function) instead of a crash.

#![allow(clippy::too_many_arguments)]

use super::guard;
use openxr_sys as xr;
use openxr_sys::pfn;
use std::collections::HashSet;
use std::sync::Mutex;

fn not_yet(name: &'static str) -> xr::Result {
    guard(|| {
        static SAID: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
        let mut said = SAID.lock().unwrap_or_else(|p| p.into_inner());
        if said.get_or_insert_with(HashSet::new).insert(name) {
            tracing::error!(
                function = name,
                "Leasehold does not implement this OpenXR function yet"
            );
        }
        xr::Result::ERROR_FUNCTION_UNSUPPORTED
    })
}

/// The stub for a core function, by name.
pub(super) fn function(name: &str) -> Option<(bool, xr::pfn::VoidFunction)> {
    Some(match name {
        "xrCreateActionSpace" => (
            false,
            void_fn!(unsupported_create_action_space, pfn::CreateActionSpace),
        ),
        "xrApplyHapticFeedback" => (
            false,
            void_fn!(unsupported_apply_haptic_feedback, pfn::ApplyHapticFeedback),
        ),
        "xrStopHapticFeedback" => (
            false,
            void_fn!(unsupported_stop_haptic_feedback, pfn::StopHapticFeedback),
        ),
        "xrGetReferenceSpaceBoundsRect" => (
            false,
            void_fn!(
                unsupported_get_reference_space_bounds_rect,
                pfn::GetReferenceSpaceBoundsRect
            ),
        ),
        "xrGetActionStateBoolean" => (
            false,
            void_fn!(
                unsupported_get_action_state_boolean,
                pfn::GetActionStateBoolean
            ),
        ),
        "xrGetActionStateFloat" => (
            false,
            void_fn!(unsupported_get_action_state_float, pfn::GetActionStateFloat),
        ),
        "xrGetActionStateVector2f" => (
            false,
            void_fn!(
                unsupported_get_action_state_vector2f,
                pfn::GetActionStateVector2f
            ),
        ),
        "xrGetActionStatePose" => (
            false,
            void_fn!(unsupported_get_action_state_pose, pfn::GetActionStatePose),
        ),
        "xrCreateActionSet" => (
            false,
            void_fn!(unsupported_create_action_set, pfn::CreateActionSet),
        ),
        "xrDestroyActionSet" => (
            false,
            void_fn!(unsupported_destroy_action_set, pfn::DestroyActionSet),
        ),
        "xrCreateAction" => (
            false,
            void_fn!(unsupported_create_action, pfn::CreateAction),
        ),
        "xrDestroyAction" => (
            false,
            void_fn!(unsupported_destroy_action, pfn::DestroyAction),
        ),
        "xrSuggestInteractionProfileBindings" => (
            false,
            void_fn!(
                unsupported_suggest_interaction_profile_bindings,
                pfn::SuggestInteractionProfileBindings
            ),
        ),
        "xrAttachSessionActionSets" => (
            false,
            void_fn!(
                unsupported_attach_session_action_sets,
                pfn::AttachSessionActionSets
            ),
        ),
        "xrGetCurrentInteractionProfile" => (
            false,
            void_fn!(
                unsupported_get_current_interaction_profile,
                pfn::GetCurrentInteractionProfile
            ),
        ),
        "xrSyncActions" => (false, void_fn!(unsupported_sync_actions, pfn::SyncActions)),
        "xrEnumerateBoundSourcesForAction" => (
            false,
            void_fn!(
                unsupported_enumerate_bound_sources_for_action,
                pfn::EnumerateBoundSourcesForAction
            ),
        ),
        "xrGetInputSourceLocalizedName" => (
            false,
            void_fn!(
                unsupported_get_input_source_localized_name,
                pfn::GetInputSourceLocalizedName
            ),
        ),
        _ => return None,
    })
}

unsafe extern "system" fn unsupported_create_action_space(
    _session: xr::Session,
    _create_info: *const xr::ActionSpaceCreateInfo,
    _space: *mut xr::Space,
) -> xr::Result {
    not_yet("xrCreateActionSpace")
}

unsafe extern "system" fn unsupported_apply_haptic_feedback(
    _session: xr::Session,
    _haptic_action_info: *const xr::HapticActionInfo,
    _haptic_feedback: *const xr::HapticBaseHeader,
) -> xr::Result {
    not_yet("xrApplyHapticFeedback")
}

unsafe extern "system" fn unsupported_stop_haptic_feedback(
    _session: xr::Session,
    _haptic_action_info: *const xr::HapticActionInfo,
) -> xr::Result {
    not_yet("xrStopHapticFeedback")
}

unsafe extern "system" fn unsupported_get_reference_space_bounds_rect(
    _session: xr::Session,
    _reference_space_type: xr::ReferenceSpaceType,
    _bounds: *mut xr::Extent2Df,
) -> xr::Result {
    not_yet("xrGetReferenceSpaceBoundsRect")
}

unsafe extern "system" fn unsupported_get_action_state_boolean(
    _session: xr::Session,
    _get_info: *const xr::ActionStateGetInfo,
    _state: *mut xr::ActionStateBoolean,
) -> xr::Result {
    not_yet("xrGetActionStateBoolean")
}

unsafe extern "system" fn unsupported_get_action_state_float(
    _session: xr::Session,
    _get_info: *const xr::ActionStateGetInfo,
    _state: *mut xr::ActionStateFloat,
) -> xr::Result {
    not_yet("xrGetActionStateFloat")
}

unsafe extern "system" fn unsupported_get_action_state_vector2f(
    _session: xr::Session,
    _get_info: *const xr::ActionStateGetInfo,
    _state: *mut xr::ActionStateVector2f,
) -> xr::Result {
    not_yet("xrGetActionStateVector2f")
}

unsafe extern "system" fn unsupported_get_action_state_pose(
    _session: xr::Session,
    _get_info: *const xr::ActionStateGetInfo,
    _state: *mut xr::ActionStatePose,
) -> xr::Result {
    not_yet("xrGetActionStatePose")
}

unsafe extern "system" fn unsupported_create_action_set(
    _instance: xr::Instance,
    _create_info: *const xr::ActionSetCreateInfo,
    _action_set: *mut xr::ActionSet,
) -> xr::Result {
    not_yet("xrCreateActionSet")
}

unsafe extern "system" fn unsupported_destroy_action_set(_action_set: xr::ActionSet) -> xr::Result {
    not_yet("xrDestroyActionSet")
}

unsafe extern "system" fn unsupported_create_action(
    _action_set: xr::ActionSet,
    _create_info: *const xr::ActionCreateInfo,
    _action: *mut xr::Action,
) -> xr::Result {
    not_yet("xrCreateAction")
}

unsafe extern "system" fn unsupported_destroy_action(_action: xr::Action) -> xr::Result {
    not_yet("xrDestroyAction")
}

unsafe extern "system" fn unsupported_suggest_interaction_profile_bindings(
    _instance: xr::Instance,
    _suggested_bindings: *const xr::InteractionProfileSuggestedBinding,
) -> xr::Result {
    not_yet("xrSuggestInteractionProfileBindings")
}

unsafe extern "system" fn unsupported_attach_session_action_sets(
    _session: xr::Session,
    _attach_info: *const xr::SessionActionSetsAttachInfo,
) -> xr::Result {
    not_yet("xrAttachSessionActionSets")
}

unsafe extern "system" fn unsupported_get_current_interaction_profile(
    _session: xr::Session,
    _top_level_user_path: xr::Path,
    _interaction_profile: *mut xr::InteractionProfileState,
) -> xr::Result {
    not_yet("xrGetCurrentInteractionProfile")
}

unsafe extern "system" fn unsupported_sync_actions(
    _session: xr::Session,
    _sync_info: *const xr::ActionsSyncInfo,
) -> xr::Result {
    not_yet("xrSyncActions")
}

unsafe extern "system" fn unsupported_enumerate_bound_sources_for_action(
    _session: xr::Session,
    _enumerate_info: *const xr::BoundSourcesForActionEnumerateInfo,
    _source_capacity_input: u32,
    _source_count_output: *mut u32,
    _sources: *mut xr::Path,
) -> xr::Result {
    not_yet("xrEnumerateBoundSourcesForAction")
}

unsafe extern "system" fn unsupported_get_input_source_localized_name(
    _session: xr::Session,
    _get_info: *const xr::InputSourceLocalizedNameGetInfo,
    _buffer_capacity_input: u32,
    _buffer_count_output: *mut u32,
    _buffer: *mut std::ffi::c_char,
) -> xr::Result {
    not_yet("xrGetInputSourceLocalizedName")
}
