//! A session's lifecycle and frame-call ordering, as the OpenXR specification defines
//! them, in plain Rust (the ABI maps [`SessionError`]s to `XrResult`s and
//! [`SessionState`] changes to `XrEventDataSessionStateChanged`).
//!
//! Lifecycle: IDLE → READY (the runtime is ready at once) → xrBeginSession → SYNCHRONIZED
//! after the first frame → VISIBLE → FOCUSED. xrRequestExitSession (or the runtime
//! losing interest) walks back down to STOPPING; xrEndSession then returns to IDLE and,
//! if exit was requested, EXITING. Losing the display (lease revoked, headset gone)
//! moves to LOSS_PENDING, after which every call fails with SESSION_LOST.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SessionState {
    Idle,
    Ready,
    Synchronized,
    Visible,
    Focused,
    Stopping,
    LossPending,
    Exiting,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// xrBeginSession outside READY.
    NotReady,
    /// xrBeginSession while running.
    Running,
    /// A call that needs a running session.
    NotRunning,
    /// xrEndSession while running but not STOPPING.
    NotStopping,
    /// Frame calls out of order (EndFrame without BeginFrame, BeginFrame without WaitFrame).
    CallOrderInvalid,
    /// The session was lost.
    Lost,
}

/// What xrBeginFrame reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeginFrame {
    Begun,
    /// The previous begun frame was never ended: it is discarded (XR_FRAME_DISCARDED).
    DiscardedPrevious,
}

#[derive(Debug, Clone)]
pub struct Session {
    state: SessionState,
    running: bool,
    exit_requested: bool,
    /// The app has polled the LOSS_PENDING event.
    loss_reported: bool,
    pending: Vec<SessionState>,
    /// Frames through xrWaitFrame / xrBeginFrame / xrEndFrame.
    waited: u64,
    begun: u64,
    ended: u64,
    frame_open: bool,
    /// Frames ended since the session began running (drives SYNCHRONIZED → FOCUSED).
    frames_running: u64,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    /// A new session: IDLE, then READY at once (both reported as events).
    pub fn new() -> Self {
        let mut s = Self {
            state: SessionState::Idle,
            running: false,
            exit_requested: false,
            loss_reported: false,
            pending: vec![SessionState::Idle],
            waited: 0,
            begun: 0,
            ended: 0,
            frame_open: false,
            frames_running: 0,
        };
        s.go(SessionState::Ready);
        s
    }

    pub fn state(&self) -> SessionState {
        self.state
    }

    pub fn is_running(&self) -> bool {
        self.running
    }

    fn go(&mut self, to: SessionState) {
        if self.state != to {
            self.state = to;
            self.pending.push(to);
        }
    }

    /// A lost session keeps answering calls as before until the app has polled its
    /// LOSS_PENDING event (that event is how an app learns of the loss; an app that
    /// treats a failing frame call as fatal would otherwise never see it); from then on
    /// every call on it is XR_ERROR_SESSION_LOST.
    pub fn alive(&self) -> Result<(), SessionError> {
        if self.state == SessionState::LossPending && self.loss_reported {
            Err(SessionError::Lost)
        } else {
            Ok(())
        }
    }

    /// State changes not yet reported, oldest first.
    pub fn take_events(&mut self) -> Vec<SessionState> {
        std::mem::take(&mut self.pending)
    }

    pub fn begin(&mut self) -> Result<(), SessionError> {
        self.alive()?;
        if self.running {
            return Err(SessionError::Running);
        }
        if self.state != SessionState::Ready {
            return Err(SessionError::NotReady);
        }
        self.running = true;
        self.frames_running = 0;
        Ok(())
    }

    pub fn request_exit(&mut self) -> Result<(), SessionError> {
        self.alive()?;
        if !self.running {
            return Err(SessionError::NotRunning);
        }
        self.exit_requested = true;
        // Walk down through the states the app must see: STOPPING is entered from
        // SYNCHRONIZED only, so a session that has not submitted a frame yet (READY)
        // passes through SYNCHRONIZED first.
        if self.state == SessionState::Ready {
            self.go(SessionState::Synchronized);
        }
        if self.state == SessionState::Focused {
            self.go(SessionState::Visible);
        }
        if self.state == SessionState::Visible {
            self.go(SessionState::Synchronized);
        }
        self.go(SessionState::Stopping);
        Ok(())
    }

    pub fn end(&mut self) -> Result<(), SessionError> {
        self.alive()?;
        if !self.running {
            return Err(SessionError::NotRunning);
        }
        if self.state != SessionState::Stopping {
            return Err(SessionError::NotStopping);
        }
        self.running = false;
        self.frame_open = false;
        // A frame waited for and never begun (the app saw STOPPING and ended) must not
        // block the first xrWaitFrame of the next run.
        self.begun = self.waited;
        self.go(SessionState::Idle);
        if self.exit_requested {
            self.go(SessionState::Exiting);
        } else {
            self.go(SessionState::Ready);
        }
        Ok(())
    }

    /// The display is gone (lease revoked, headset unplugged).
    pub fn lose(&mut self) {
        self.go(SessionState::LossPending);
    }

    /// The app polled this session's LOSS_PENDING event.
    pub fn loss_reported(&mut self) {
        if self.state == SessionState::LossPending {
            self.loss_reported = true;
        }
    }

    pub fn is_lost(&self) -> bool {
        self.state == SessionState::LossPending
    }

    /// xrWaitFrame: returns the frame's index. A second wait before the frame is begun
    /// is allowed (it waits for the next display frame).
    pub fn wait_frame(&mut self) -> Result<u64, SessionError> {
        self.alive()?;
        if !self.running {
            return Err(SessionError::NotRunning);
        }
        self.waited += 1;
        Ok(self.waited)
    }

    /// xrWaitFrame must block: a frame was waited for and not yet begun (a second
    /// xrWaitFrame waits for the first one's xrBeginFrame).
    pub fn frame_wait_blocked(&self) -> bool {
        self.running && self.waited > self.begun
    }

    pub fn begin_frame(&mut self) -> Result<BeginFrame, SessionError> {
        self.alive()?;
        if !self.running {
            return Err(SessionError::NotRunning);
        }
        if self.begun >= self.waited {
            return Err(SessionError::CallOrderInvalid);
        }
        self.begun = self.waited;
        if self.frame_open {
            return Ok(BeginFrame::DiscardedPrevious);
        }
        self.frame_open = true;
        Ok(BeginFrame::Begun)
    }

    pub fn end_frame(&mut self) -> Result<(), SessionError> {
        self.alive()?;
        if !self.running {
            return Err(SessionError::NotRunning);
        }
        if !self.frame_open {
            return Err(SessionError::CallOrderInvalid);
        }
        self.frame_open = false;
        self.ended += 1;
        self.frames_running += 1;
        // The first submitted frame synchronises the session with the display; the app
        // is then shown and, with nothing else competing for input, focused.
        if !self.exit_requested {
            match self.state {
                SessionState::Ready => {
                    self.go(SessionState::Synchronized);
                    self.go(SessionState::Visible);
                    self.go(SessionState::Focused);
                }
                SessionState::Synchronized => {
                    self.go(SessionState::Visible);
                    self.go(SessionState::Focused);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A frame is begun and not yet ended.
    pub fn frame_in_progress(&self) -> bool {
        self.frame_open
    }

    /// Frames the app has ended.
    pub fn frames_ended(&self) -> u64 {
        self.ended
    }
}

#[cfg(test)]
mod tests {
    use super::SessionState::*;
    use super::*;

    fn frame(s: &mut Session) {
        s.wait_frame().unwrap();
        assert_eq!(s.begin_frame().unwrap(), BeginFrame::Begun);
        s.end_frame().unwrap();
    }

    #[test]
    fn the_whole_lifecycle_with_events() {
        let mut s = Session::new();
        assert_eq!(s.take_events(), vec![Idle, Ready]);
        s.begin().unwrap();
        frame(&mut s);
        assert_eq!(s.take_events(), vec![Synchronized, Visible, Focused]);
        for _ in 0..10 {
            frame(&mut s);
        }
        assert!(s.take_events().is_empty());
        s.request_exit().unwrap();
        assert_eq!(s.take_events(), vec![Visible, Synchronized, Stopping]);
        s.end().unwrap();
        assert_eq!(s.take_events(), vec![Idle, Exiting]);
        assert_eq!(s.frames_ended(), 11);
        assert!(!s.is_running());
    }

    #[test]
    fn lifecycle_errors() {
        let mut s = Session::new();
        assert_eq!(s.end(), Err(SessionError::NotRunning));
        assert_eq!(s.request_exit(), Err(SessionError::NotRunning));
        assert_eq!(s.wait_frame(), Err(SessionError::NotRunning));
        s.begin().unwrap();
        assert_eq!(s.begin(), Err(SessionError::Running));
        assert_eq!(s.end(), Err(SessionError::NotStopping));
        s.lose();
        assert_eq!(s.take_events().last(), Some(&LossPending));
        // Until the app has seen the event, frame calls go on (nothing is shown).
        assert!(s.wait_frame().is_ok());
        assert!(s.begin_frame().is_ok());
        assert!(s.end_frame().is_ok());
        s.loss_reported();
        assert_eq!(s.wait_frame(), Err(SessionError::Lost));
        assert_eq!(s.end(), Err(SessionError::Lost));
    }

    #[test]
    fn frame_call_ordering() {
        let mut s = Session::new();
        s.begin().unwrap();
        assert_eq!(s.begin_frame(), Err(SessionError::CallOrderInvalid));
        assert_eq!(s.end_frame(), Err(SessionError::CallOrderInvalid));
        s.wait_frame().unwrap();
        assert_eq!(s.begin_frame(), Ok(BeginFrame::Begun));
        // Begin again after another wait without ending: the open frame is discarded.
        s.wait_frame().unwrap();
        assert_eq!(s.begin_frame(), Ok(BeginFrame::DiscardedPrevious));
        s.end_frame().unwrap();
        assert_eq!(s.end_frame(), Err(SessionError::CallOrderInvalid));
        // A wait blocks the next one until its frame is begun; one begin per wait.
        assert!(!s.frame_wait_blocked());
        s.wait_frame().unwrap();
        assert!(
            s.frame_wait_blocked(),
            "a second wait blocks until xrBeginFrame"
        );
        s.begin_frame().unwrap();
        assert!(!s.frame_wait_blocked());
        s.end_frame().unwrap();
        assert_eq!(s.begin_frame(), Err(SessionError::CallOrderInvalid));
    }

    #[test]
    fn a_wait_left_open_at_the_end_does_not_block_the_next_run() {
        let mut s = Session::new();
        s.begin().unwrap();
        frame(&mut s);
        s.request_exit().unwrap();
        s.exit_requested = false;
        s.wait_frame().unwrap();
        assert!(s.frame_wait_blocked());
        s.end().unwrap();
        s.begin().unwrap();
        assert!(
            !s.frame_wait_blocked(),
            "the next run's first xrWaitFrame returns"
        );
    }

    #[test]
    fn exit_before_the_first_frame_passes_through_synchronized() {
        let mut s = Session::new();
        s.begin().unwrap();
        s.take_events();
        s.request_exit().unwrap();
        assert_eq!(s.take_events(), vec![Synchronized, Stopping]);
        s.end().unwrap();
        assert_eq!(s.take_events(), vec![Idle, Exiting]);
    }

    #[test]
    fn a_session_that_ends_without_exit_is_ready_again() {
        let mut s = Session::new();
        s.begin().unwrap();
        frame(&mut s);
        s.take_events();
        // The runtime asks the app to stop (e.g. the headset was taken off).
        s.request_exit().unwrap();
        s.exit_requested = false;
        s.end().unwrap();
        assert_eq!(
            s.take_events(),
            vec![Visible, Synchronized, Stopping, Idle, Ready]
        );
        s.begin().unwrap();
        frame(&mut s);
        assert_eq!(s.state(), Focused);
    }
}
