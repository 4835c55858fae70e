//! XrPath atoms: well-formed path strings interned per instance.

use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Not a well-formed path string (XR_ERROR_PATH_FORMAT_INVALID).
    Format,
    /// Not a path of this instance (XR_ERROR_PATH_INVALID).
    Invalid,
}

#[derive(Debug, Default)]
pub struct PathTable {
    ids: HashMap<String, u64>,
    names: Vec<String>,
}

/// The spec's rules: starts with '/', no trailing '/', components of [a-z0-9-_.], no
/// empty, "." or ".." component, and at most XR_MAX_PATH_LENGTH - 1 bytes.
pub fn well_formed(s: &str) -> bool {
    if !s.starts_with('/') || s.len() < 2 || s.len() >= 256 || s.ends_with('/') {
        return false;
    }
    s[1..].split('/').all(|c| {
        !c.is_empty()
            && c != "."
            && c != ".."
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
    })
}

impl PathTable {
    pub fn intern(&mut self, s: &str) -> Result<u64, PathError> {
        if !well_formed(s) {
            return Err(PathError::Format);
        }
        if let Some(&id) = self.ids.get(s) {
            return Ok(id);
        }
        self.names.push(s.to_string());
        let id = self.names.len() as u64;
        self.ids.insert(s.to_string(), id);
        Ok(id)
    }

    pub fn name(&self, id: u64) -> Result<&str, PathError> {
        id.checked_sub(1)
            .and_then(|i| self.names.get(i as usize))
            .map(String::as_str)
            .ok_or(PathError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_and_the_format_rules() {
        let mut t = PathTable::default();
        let a = t.intern("/user/hand/left").unwrap();
        assert_eq!(t.intern("/user/hand/left").unwrap(), a);
        let b = t
            .intern("/interaction_profiles/khr/simple_controller")
            .unwrap();
        assert_ne!(a, b);
        assert_eq!(
            t.name(b).unwrap(),
            "/interaction_profiles/khr/simple_controller"
        );
        for bad in [
            "", "/", "user", "/user/", "//x", "/a//b", "/A", "/a b", "/a/./b", "/a/..",
        ] {
            assert_eq!(t.intern(bad), Err(PathError::Format), "{bad:?}");
        }
        assert_eq!(t.name(0), Err(PathError::Invalid));
        assert_eq!(t.name(99), Err(PathError::Invalid));
    }
}
