//! Spaces in the tree: owned by their session.

use crate::state::space::ReferenceSpace;

pub(crate) struct SpaceObj {
    pub(crate) session: u64,
    pub(crate) space: ReferenceSpace,
    /// Action spaces: (action, subaction path); `space.pose_in_reference` is then the
    /// pose in the action space.
    pub(crate) action: Option<(u64, u64)>,
}
