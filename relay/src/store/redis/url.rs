//! Where Redis is: a `redis://` URL, or Sentinels and a service name in a
//! `redis+sentinel://` one.

use fred::prelude::{Config, Server};
use fred::types::config::ServerConfig;
use pushmfa_config::relay::redacted;

/// Where Redis is: `redis://[[user]:password@]host[:port][/db]`, or
/// through Sentinel:
/// `redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db]`.
pub fn parse_url(url: &str) -> Result<Config, String> {
    if let Some(rest) = url.strip_prefix("redis+sentinel://") {
        return sentinel_config(rest);
    }
    if !url.starts_with("redis://") {
        return Err(format!(
            "store {:?}: expected \"memory\", redis://host:port or redis+sentinel://host:port,.../service",
            redacted(url)
        ));
    }
    Config::from_url(url).map_err(|e| format!("store {:?}: {e}", redacted(url)))
}

fn sentinel_config(rest: &str) -> Result<Config, String> {
    let shown = redacted(&format!("redis+sentinel://{rest}"));
    let bad = |why: &str| format!("store {shown}: {why}");
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((a, r)) => (Some(a), r),
        None => (None, rest),
    };
    let (hosts, path) = rest
        .split_once('/')
        .ok_or_else(|| bad("name the primary's service after the hosts: /mymaster"))?;
    let mut parts = path.split('/');
    let service = parts
        .next()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("no service name"))?;
    let database = match parts.next() {
        Some(db) => Some(db.parse::<u8>().map_err(|_| bad("database: a number"))?),
        None => None,
    };
    let hosts = hosts
        .split(',')
        .map(|h| {
            let (host, port) = h
                .rsplit_once(':')
                .ok_or_else(|| bad("host:port expected"))?;
            let port = port.parse::<u16>().map_err(|_| bad("port: a number"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            Ok(Server::new(host, port))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let (username, password) = match auth.map(|a| a.split_once(':').unwrap_or(("", a))) {
        Some((u, p)) => (Some(u).filter(|u| !u.is_empty()), Some(p)),
        None => (None, None),
    };
    Ok(Config {
        server: ServerConfig::Sentinel {
            hosts,
            service_name: service.to_owned(),
        },
        username: username.map(str::to_owned),
        password: password.map(str::to_owned),
        database,
        ..Config::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_server_or_sentinels_and_garbage_says_what_is_wrong() {
        assert!(parse_url("redis://127.0.0.1:6379/2").is_ok());
        let c = parse_url("redis+sentinel://:pw@10.0.0.1:26379,[::1]:26380/mymaster/3").unwrap();
        match &c.server {
            ServerConfig::Sentinel {
                hosts,
                service_name,
            } => {
                assert_eq!(service_name, "mymaster");
                assert_eq!(hosts.len(), 2);
                assert_eq!(hosts[1].port, 26380);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.password.as_deref(), Some("pw"));
        assert_eq!(c.database, Some(3));
        let e = parse_url("redis+sentinel://:hunter2@h:1").unwrap_err();
        assert!(!e.contains("hunter2") && e.contains("***@h:1"), "{e}");
        let e = parse_url("redis://:hunter2@h:notaport/0").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        for bad in [
            "http://x",
            "redis+sentinel://h:1",
            "redis+sentinel://h/svc",
            "redis+sentinel://h:x/svc",
            "redis+sentinel://h:1/",
        ] {
            let e = parse_url(bad).unwrap_err();
            assert!(e.contains("store"), "{bad}: {e}");
        }
    }
}
