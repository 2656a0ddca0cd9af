//! Man pages, generated from the code so they stay true: the four
//! programs from their clap definitions (clap_mangen), pam_pushmfa(8) from
//! the module's arguments and defaults, pushmfa.toml(5) from the shipped
//! configuration file. `pushmfa-man DIR` writes them; a test checks that
//! packaging/man/ is up to date.

use clap::CommandFactory;

/// The page of `cmd`, plus one per subcommand (`name-sub.section`), as the
/// SUBCOMMANDS list of the main page refers to them.
fn clap_pages(cmd: clap::Command, name: &str, section: &str) -> Vec<(String, Vec<u8>)> {
    // clap wants 'static names; a generator can afford to leak a few.
    let static_name: &'static str = Box::leak(name.to_owned().into_boxed_str());
    let cmd = cmd.name(static_name).bin_name(static_name);
    let mut pages = Vec::new();
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let sub_name = format!("{name}-{}", sub.get_name());
        pages.extend(clap_pages(sub.clone(), &sub_name, section));
    }
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .section(section)
        .render(&mut out)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    pages.insert(0, (format!("{name}.{section}"), out));
    pages
}

fn escape(line: &str) -> String {
    let l = line.replace('\\', "\\e");
    if l.starts_with('.') || l.starts_with('\'') {
        format!("\\&{l}")
    } else {
        l
    }
}

fn pam_page() -> (String, Vec<u8>) {
    let secs = pam_pushmfa::args::DEFAULT_TIMEOUT.as_secs();
    let text = format!(
        r#".TH PAM_PUSHMFA 8 "" "pushmfa {v}" "Linux-PAM"
.SH NAME
pam_pushmfa \- push-approval second factor for PAM
.SH SYNOPSIS
.B auth required pam_pushmfa.so
[\fBsocket=\fIPATH\fR] [\fBtimeout=\fISECS\fR] [\fBdebug\fR]
.SH DESCRIPTION
Asks the user's enrolled phone to approve the login (the user types the number shown at the prompt),
or accepts a one-time recovery code at the same prompt. The module only relays: the decision is made by
.BR pushmfa-helper (8),
which verifies every approval against the device key enrolled on this host. The module starts no
threads, opens no network connection and holds no secrets.
.SH OPTIONS
.TP
.BI socket= PATH
The helper's socket (default \fI{socket}\fR).
.TP
.BI timeout= SECS
How long to wait for each message from the helper, beyond any wait it announces (1\-600, default {secs}).
.TP
.B debug
Log every result to syslog (authpriv), successes included.
.PP
Any other argument makes the module return PAM_SERVICE_ERR and log its name.
.SH MODULE TYPES PROVIDED
\fBauth\fR. \fBpam_sm_setcred\fR returns PAM_SUCCESS; account, session and password return PAM_IGNORE
(no opinion).
.SH RETURN VALUES
.TP
PAM_SUCCESS
Approved on an enrolled device, or a valid recovery code.
.TP
PAM_AUTH_ERR
Denied or reported on the device, wrong number, wrong recovery code, backoff or lockout.
.TP
PAM_MAXTRIES
Too many wrong recovery codes in this login.
.TP
PAM_IGNORE
The user is not enrolled and the helper's policy is \fBunenrolled = "ignore"\fR (the only case).
.TP
PAM_AUTHINFO_UNAVAIL
The helper is not running, stopped answering, or its state is insecure or corrupt.
.TP
PAM_SYSTEM_ERR
The helper sent something malformed, or failed internally.
.TP
PAM_SERVICE_ERR
Unknown or invalid module argument.
.TP
PAM_CONV_ERR
The application's conversation failed.
.TP
PAM_PERM_DENIED
A non-root program asked to authenticate another user.
.SH EXAMPLES
.nf
# /etc/pam.d/sudo, after the password check
auth required pam_pushmfa.so
.fi
.SH SEE ALSO
.BR pushmfa (1),
.BR pushmfa-helper (8),
.BR pushmfa.toml (5),
.BR pam.conf (5)
"#,
        v = env!("CARGO_PKG_VERSION"),
        socket = pam_pushmfa::args::DEFAULT_SOCKET,
    );
    ("pam_pushmfa.8".into(), text.into_bytes())
}

/// A configuration file's page: its description, then the shipped file,
/// which lists every option with its default.
fn config_page(
    name: &str,
    path: &str,
    shipped: &str,
    what: &str,
    rules: &str,
    see: &[&str],
) -> (String, Vec<u8>) {
    let upper = name.to_uppercase();
    let mut text = format!(
        r#".TH {upper} 5 "" "pushmfa {v}" "File Formats"
.SH NAME
{name} \- configuration of {what}
.SH DESCRIPTION
\fI{path}\fR configures {what}.
It is TOML. Unknown keys are errors, reported with file, line and key. {rules}
.PP
The file installed by the package lists every option with its default value and what it does:
.PP
.nf
"#,
        v = env!("CARGO_PKG_VERSION"),
    );
    for line in shipped.lines() {
        text.push_str(&escape(line));
        text.push('\n');
    }
    text.push_str(".fi\n.SH SEE ALSO\n");
    for (i, page) in see.iter().enumerate() {
        let (n, sec) = page.split_once('.').unwrap_or((page, "8"));
        let comma = if i + 1 < see.len() { "," } else { "" };
        text.push_str(&format!(".BR {n} ({sec}){comma}\n"));
    }
    (format!("{name}.5"), text.into_bytes())
}

fn helper_config_page() -> (String, Vec<u8>) {
    config_page(
        "pushmfa.toml",
        pushmfa_config::DEFAULT_PATH,
        pushmfa_config::SHIPPED_CONFIG,
        "the pushmfa helper, pushmfa-helper(8)",
        "The file must be owned by root or the helper's user and must not be writable by group or others.",
        &["pushmfa-helper.8", "pam_pushmfa.8"],
    )
}

fn relay_config_page() -> (String, Vec<u8>) {
    config_page(
        "pushmfa-relay.toml",
        pushmfa_config::relay::RELAY_DEFAULT_PATH,
        pushmfa_config::relay::SHIPPED_RELAY_CONFIG,
        "the pushmfa push relay, pushmfa-relay(8)",
        "Options given on the relay's command line override it. The file must be owned by root or the relay's user and must not be writable by group or others.",
        &["pushmfa-relay.8"],
    )
}

/// Every man page: (file name, contents).
pub fn pages() -> Vec<(String, Vec<u8>)> {
    let mut pages = Vec::new();
    pages.extend(clap_pages(
        pushmfa_cli::args::Cli::command(),
        "pushmfa",
        "1",
    ));
    pages.extend(clap_pages(
        pushmfa_helper::args::Args::command(),
        "pushmfa-helper",
        "8",
    ));
    pages.extend(clap_pages(
        pushmfa_relay::args::Args::command(),
        "pushmfa-relay",
        "8",
    ));
    pages.extend(clap_pages(
        pushmfa_authenticator::args::Cli::command(),
        "pushmfa-authenticator",
        "1",
    ));
    pages.push(pam_page());
    pages.push(helper_config_page());
    pages.push(relay_config_page());
    pages
}
