//! syslog (facility authpriv) only: stdout and stderr belong to the host
//! program (sshd, sudo, a screen locker).

fn send(err: bool, msg: &str) {
    let formatter = syslog::Formatter3164 {
        facility: syslog::Facility::LOG_AUTHPRIV,
        hostname: None,
        process: "pam_pushmfa".into(),
        pid: std::process::id(),
    };
    // Without a syslog socket there is nowhere to log; never fail a login for it.
    if let Ok(mut w) = syslog::unix(formatter) {
        let _ = if err { w.err(msg) } else { w.info(msg) };
    }
}

pub fn error(msg: &str) {
    send(true, msg)
}

pub fn info(msg: &str) {
    send(false, msg)
}
