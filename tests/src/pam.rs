//! Real libpam in-process: `pam_start_confdir` (Linux-PAM >= 1.4) loads the
//! service file from the test's own directory, so no root and no
//! /etc/pam.d edits are needed. The conversation is scripted.

use std::collections::VecDeque;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::{Path, PathBuf};

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn =
    extern "C" fn(c_int, *mut *const PamMessage, *mut *mut PamResponse, *mut c_void) -> c_int;

#[repr(C)]
struct PamConv {
    conv: ConvFn,
    appdata_ptr: *mut c_void,
}

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_start_confdir(
        service: *const c_char,
        user: *const c_char,
        conv: *const PamConv,
        confdir: *const c_char,
        pamh: *mut *mut c_void,
    ) -> c_int;
    fn pam_set_item(pamh: *mut c_void, item: c_int, value: *const c_void) -> c_int;
    fn pam_authenticate(pamh: *mut c_void, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut c_void, status: c_int) -> c_int;
}

const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
const PAM_ERROR_MSG: c_int = 3;
const PAM_TEXT_INFO: c_int = 4;
const PAM_CONV_ERR: c_int = 19;
const PAM_TTY: c_int = 3;
const PAM_RHOST: c_int = 4;
const PAM_RUSER: c_int = 8;
pub const PAM_SILENT: c_int = 0x8000;

/// Called with each info line the user is shown.
type InfoHook = Box<dyn FnMut(&str)>;

/// What the scripted user does at a prompt.
pub enum Answer {
    Text(String),
    /// Runs the closure (e.g. kill the helper), then answers its text.
    Then(Box<dyn FnOnce() -> String>),
    /// Gets the prompt text (e.g. to read the number), answers its result.
    Reply(Box<dyn FnOnce(&str) -> String>),
    /// The conversation fails (as when the application has no answer).
    Fail,
}

impl From<&str> for Answer {
    fn from(s: &str) -> Answer {
        Answer::Text(s.to_owned())
    }
}

/// What the user saw, one line per message: `prompt:`, `prompt-echo:`,
/// `error:` or `info:` followed by the text.
pub type Transcript = Vec<String>;

struct Script {
    answers: VecDeque<Answer>,
    transcript: Transcript,
    on_info: Option<InfoHook>,
}

extern "C" fn scripted_conv(
    n: c_int,
    msgs: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    app: *mut c_void,
) -> c_int {
    // SAFETY: app is the &mut Script passed to pam_start_confdir below, alive for the call.
    let script = unsafe { &mut *(app as *mut Script) };
    let n = n.max(0) as usize;
    // libpam frees the array and each resp with free(): allocate with calloc/strdup.
    let out =
        unsafe { libc::calloc(n.max(1), std::mem::size_of::<PamResponse>()) } as *mut PamResponse;
    for i in 0..n {
        // SAFETY: Linux-PAM passes an array of n message pointers.
        let m = unsafe { &**msgs.add(i) };
        let text = unsafe { CStr::from_ptr(m.msg) }
            .to_string_lossy()
            .into_owned();
        let tag = match m.msg_style {
            PAM_PROMPT_ECHO_OFF => "prompt",
            PAM_PROMPT_ECHO_ON => "prompt-echo",
            PAM_ERROR_MSG => "error",
            PAM_TEXT_INFO => "info",
            _ => "other",
        };
        script.transcript.push(format!("{tag}:{text}"));
        if m.msg_style == PAM_TEXT_INFO {
            if let Some(hook) = script.on_info.as_mut() {
                hook(&text);
            }
        }
        if m.msg_style == PAM_PROMPT_ECHO_OFF || m.msg_style == PAM_PROMPT_ECHO_ON {
            let answer = match script.answers.pop_front() {
                Some(Answer::Text(t)) => t,
                Some(Answer::Then(f)) => f(),
                Some(Answer::Reply(f)) => f(&text),
                Some(Answer::Fail) | None => {
                    for j in 0..i {
                        unsafe { libc::free((*out.add(j)).resp.cast()) };
                    }
                    unsafe { libc::free(out.cast()) };
                    return PAM_CONV_ERR;
                }
            };
            let c = CString::new(answer).unwrap_or_default();
            unsafe { (*out.add(i)).resp = libc::strdup(c.as_ptr()) };
        }
    }
    unsafe { *resp = out };
    0
}

/// One login, built up and then run.
pub struct PamRun {
    confdir: PathBuf,
    service: String,
    user: String,
    answers: VecDeque<Answer>,
    items: Vec<(c_int, String)>,
    flags: c_int,
    on_info: Option<InfoHook>,
}

impl PamRun {
    pub fn new(confdir: &Path, service: &str, user: &str) -> PamRun {
        PamRun {
            confdir: confdir.to_owned(),
            service: service.into(),
            user: user.into(),
            answers: VecDeque::new(),
            items: Vec::new(),
            flags: 0,
            on_info: None,
        }
    }

    pub fn answer(mut self, a: impl Into<Answer>) -> PamRun {
        self.answers.push_back(a.into());
        self
    }

    pub fn rhost(mut self, v: &str) -> PamRun {
        self.items.push((PAM_RHOST, v.into()));
        self
    }

    pub fn tty(mut self, v: &str) -> PamRun {
        self.items.push((PAM_TTY, v.into()));
        self
    }

    pub fn ruser(mut self, v: &str) -> PamRun {
        self.items.push((PAM_RUSER, v.into()));
        self
    }

    /// Called with each info line the user is shown.
    pub fn on_info(mut self, hook: impl FnMut(&str) + 'static) -> PamRun {
        self.on_info = Some(Box::new(hook));
        self
    }

    pub fn flags(mut self, f: c_int) -> PamRun {
        self.flags = f;
        self
    }

    /// Runs pam_authenticate; returns its code and what the user saw.
    pub fn run(self) -> (i32, Transcript) {
        let mut script = Script {
            answers: self.answers,
            transcript: Vec::new(),
            on_info: self.on_info,
        };
        let conv = PamConv {
            conv: scripted_conv,
            appdata_ptr: (&mut script as *mut Script).cast(),
        };
        let cstr = |s: &str| CString::new(s).unwrap_or_default();
        let (svc, user) = (cstr(&self.service), cstr(&self.user));
        let dir = cstr(&self.confdir.to_string_lossy());
        let mut h: *mut c_void = std::ptr::null_mut();
        let rc =
            unsafe { pam_start_confdir(svc.as_ptr(), user.as_ptr(), &conv, dir.as_ptr(), &mut h) };
        assert_eq!(rc, 0, "pam_start_confdir failed: {rc}");
        for (item, value) in &self.items {
            let v = cstr(value);
            unsafe { pam_set_item(h, *item, v.as_ptr().cast()) };
        }
        let rc = unsafe { pam_authenticate(h, self.flags) };
        unsafe { pam_end(h, rc) };
        (rc, script.transcript)
    }
}
