//! (in progress)
pub fn run(_a: &[String]) -> crate::util::Result {
    Err("todo".into())
}
pub fn run_cli(_a: &[String]) -> crate::util::Result {
    Err("todo".into())
}
