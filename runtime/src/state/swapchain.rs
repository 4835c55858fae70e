//! A swapchain's image cycle as the OpenXR specification defines it: images are
//! acquired in order (passing over one the compositor still reads while another is
//! free: the runtime picks the next available index), each acquired image is waited on before it is released, releases
//! happen in acquisition order, and a static swapchain's one image is acquired once.

use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwapchainError {
    /// Acquire with every image already acquired, wait with nothing acquired (or the
    /// oldest already waited), release with nothing waited, a second acquire of a
    /// static image (XR_ERROR_CALL_ORDER_INVALID).
    CallOrderInvalid,
}

#[derive(Debug, Clone)]
pub struct SwapchainCycle {
    count: u32,
    static_image: bool,
    next: u32,
    /// Acquired and not yet released, oldest first: (index, waited).
    acquired: VecDeque<(u32, bool)>,
    released: Option<u32>,
    acquisitions: u64,
}

impl SwapchainCycle {
    pub fn new(count: u32, static_image: bool) -> Self {
        Self {
            count: count.max(1),
            static_image,
            next: 0,
            acquired: VecDeque::new(),
            released: None,
            acquisitions: 0,
        }
    }

    pub fn acquire(&mut self) -> Result<u32, SwapchainError> {
        self.acquire_preferring(|_| true)
    }

    /// Acquires the next image in order that is not acquired, is not the last released
    /// one (a layer naming the swapchain shows that one until another is released, so it
    /// must not be written meanwhile) and that `free` says the compositor no longer reads;
    /// else the next one not acquired, in order (the app then waits for it in
    /// xrWaitSwapchainImage).
    pub fn acquire_preferring(
        &mut self,
        free: impl Fn(u32) -> bool,
    ) -> Result<u32, SwapchainError> {
        if self.acquired.len() as u32 >= self.count || (self.static_image && self.acquisitions > 0)
        {
            return Err(SwapchainError::CallOrderInvalid);
        }
        let candidates: Vec<u32> = (0..self.count)
            .map(|k| (self.next + k) % self.count)
            .filter(|i| !self.acquired.iter().any(|(a, _)| a == i))
            .collect();
        let i = candidates
            .iter()
            .copied()
            .find(|&i| Some(i) != self.released && free(i))
            .unwrap_or(candidates[0]);
        self.next = (i + 1) % self.count;
        self.acquired.push_back((i, false));
        self.acquisitions += 1;
        Ok(i)
    }

    /// The image the next wait is for (the oldest acquired, not yet waited). One image
    /// at a time is waited: a waited image must be released before the next wait.
    pub fn to_wait(&self) -> Result<u32, SwapchainError> {
        if self.acquired.iter().any(|(_, w)| *w) {
            return Err(SwapchainError::CallOrderInvalid);
        }
        self.acquired
            .front()
            .map(|&(i, _)| i)
            .ok_or(SwapchainError::CallOrderInvalid)
    }

    pub fn waited(&mut self, index: u32) {
        if let Some(e) = self.acquired.iter_mut().find(|(i, _)| *i == index) {
            e.1 = true;
        }
    }

    /// The image the next release is for (the oldest acquired, if waited).
    pub fn to_release(&self) -> Result<u32, SwapchainError> {
        match self.acquired.front() {
            Some(&(i, true)) => Ok(i),
            _ => Err(SwapchainError::CallOrderInvalid),
        }
    }

    pub fn release(&mut self) -> Result<u32, SwapchainError> {
        let i = self.to_release()?;
        self.acquired.pop_front();
        self.released = Some(i);
        Ok(i)
    }

    /// The most recently released image: what a layer naming this swapchain shows.
    pub fn released(&self) -> Option<u32> {
        self.released
    }
}

#[cfg(test)]
mod tests {
    use super::SwapchainError::CallOrderInvalid;
    use super::*;

    #[test]
    fn images_cycle_in_order_through_acquire_wait_release() {
        let mut c = SwapchainCycle::new(3, false);
        assert_eq!(c.released(), None);
        for round in 0..7u32 {
            let i = c.acquire().unwrap();
            assert_eq!(i, round % 3);
            assert_eq!(c.to_release(), Err(CallOrderInvalid), "not waited yet");
            assert_eq!(c.to_wait(), Ok(i));
            c.waited(i);
            assert_eq!(c.to_wait(), Err(CallOrderInvalid), "already waited");
            assert_eq!(c.release(), Ok(i));
            assert_eq!(c.released(), Some(i));
        }
        assert_eq!(c.release(), Err(CallOrderInvalid), "nothing acquired");
        assert_eq!(c.to_wait(), Err(CallOrderInvalid));
    }

    #[test]
    fn an_image_the_compositor_still_reads_is_passed_over_while_another_is_free() {
        let mut c = SwapchainCycle::new(3, false);
        let shown = 0;
        // Image 0 is held: 1 comes next, as in order.
        assert_eq!(c.acquire_preferring(|i| i != shown), Ok(1));
        c.waited(1);
        c.release().unwrap();
        // Next in order is 2; then 0 is held and 2 (just released) is what a layer shows:
        // 1 again (free, not acquired).
        assert_eq!(c.acquire_preferring(|i| i != shown), Ok(2));
        c.waited(2);
        c.release().unwrap();
        assert_eq!(c.acquire_preferring(|i| i != shown), Ok(1));
        c.waited(1);
        c.release().unwrap();
        // 1 was released last: never handed out again before another is released, even
        // when nothing holds it.
        assert_eq!(c.acquire_preferring(|_| true), Ok(2));
        c.waited(2);
        c.release().unwrap();
        assert_eq!(c.acquire_preferring(|_| true), Ok(0));
        c.waited(0);
        c.release().unwrap();
        assert_eq!(c.acquire_preferring(|i| i != shown), Ok(1));
        // Nothing free: the next not acquired, in order (the app waits for it).
        assert_eq!(c.acquire_preferring(|_| false), Ok(2));
        assert_eq!(c.acquire_preferring(|_| false), Ok(0));
        assert_eq!(c.acquire_preferring(|_| true), Err(CallOrderInvalid));
    }

    #[test]
    fn at_most_every_image_acquired_and_releases_in_acquisition_order() {
        let mut c = SwapchainCycle::new(2, false);
        assert_eq!(c.acquire(), Ok(0));
        assert_eq!(c.acquire(), Ok(1));
        assert_eq!(c.acquire(), Err(CallOrderInvalid));
        // Waits go oldest first, one waited image at a time.
        assert_eq!(c.to_wait(), Ok(0));
        c.waited(0);
        assert_eq!(
            c.to_wait(),
            Err(CallOrderInvalid),
            "0 is waited, not released"
        );
        assert_eq!(c.release(), Ok(0));
        assert_eq!(c.release(), Err(CallOrderInvalid), "1 is not waited yet");
        assert_eq!(c.to_wait(), Ok(1));
        c.waited(1);
        assert_eq!(c.release(), Ok(1));
        assert_eq!(c.acquire(), Ok(0));
    }

    #[test]
    fn a_static_image_is_acquired_once() {
        let mut c = SwapchainCycle::new(1, true);
        assert_eq!(c.acquire(), Ok(0));
        c.waited(0);
        c.release().unwrap();
        assert_eq!(c.acquire(), Err(CallOrderInvalid));
        assert_eq!(c.released(), Some(0));
    }
}
