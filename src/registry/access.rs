//! Who may do what in the registry (sans-io). A domain writes only its own products' subjects
//! (`<domain>.…`, after an alias is resolved) and their config; the `platform` principal does
//! everything, and alone changes global settings, modes and associations, and deletes. Reads are
//! open unless the registry is told otherwise.

use super::{
    api::{ApiError, Result},
    state::in_default_context,
};
pub use crate::auth::PLATFORM;

/// What a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// It only reads.
    Read,
    /// It writes this subject (registers a version of it, or sets its config).
    Subject(String),
    /// It changes what only the platform may change.
    Platform,
}

/// What `method` on `path` needs; `resolve` answers the subject an alias stands for.
pub fn need(method: &str, path: &str, resolve: impl Fn(&str) -> String) -> Result<Need> {
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_decode(s).ok_or_else(|| {
                ApiError::bad_request(format!("the path segment `{s}` is not valid UTF-8"))
            })
        })
        .collect::<Result<_>>()?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    Ok(match (method, segments.as_slice()) {
        ("GET" | "HEAD", _) | ("POST", [] | ["subjects", _] | ["compatibility", ..]) => Need::Read,
        ("POST", ["subjects", subject, "versions"]) => {
            Need::Subject(resolve(in_default_context(subject)?))
        }
        ("PUT" | "DELETE", ["config", subject]) => {
            Need::Subject(in_default_context(subject)?.to_owned())
        }
        _ => Need::Platform,
    })
}

/// Whether `principal` (`None`: no credentials) may do what a request needs.
pub fn decide(principal: Option<&str>, need: &Need, reads_open: bool) -> Result<()> {
    let write = |what: &str| {
        match principal {
        None => Err(ApiError::unauthorized(what)),
        Some(PLATFORM) => Ok(()),
        Some(domain) => match need {
            Need::Subject(subject) if subject.starts_with(&format!("{domain}.")) => Ok(()),
            Need::Subject(subject) => Err(ApiError::forbidden(format!(
                "principal `{domain}` may write only its own domain's subjects (`{domain}.…`), not `{subject}`"
            ))),
            _ => Err(ApiError::forbidden(format!(
                "principal `{domain}` may not {what}; only `{PLATFORM}` may"
            ))),
        },
    }
    };
    match need {
        Need::Read if reads_open || principal.is_some() => Ok(()),
        Need::Read => Err(ApiError::unauthorized("read")),
        Need::Subject(_) => write("write this subject"),
        Need::Platform => write("change global settings, modes or associations, or delete"),
    }
}

fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alias(s: &str) -> String {
        if s == "player.plays.ingress-value" {
            "player.plays-value".into()
        } else {
            s.into()
        }
    }

    #[test]
    fn each_request_needs_what_it_changes() {
        let cases = [
            ("GET", "/subjects/x-value/versions", Need::Read),
            ("POST", "/subjects/x-value", Need::Read),
            (
                "POST",
                "/compatibility/subjects/x-value/versions/latest",
                Need::Read,
            ),
            (
                "POST",
                "/subjects/player.plays.ingress-value/versions",
                Need::Subject("player.plays-value".into()),
            ),
            (
                "POST",
                "/subjects/%3A.%3Aplayer.plays-value/versions",
                Need::Subject("player.plays-value".into()),
            ),
            (
                "PUT",
                "/config/player.plays-value",
                Need::Subject("player.plays-value".into()),
            ),
            ("PUT", "/config", Need::Platform),
            ("DELETE", "/subjects/player.plays-value", Need::Platform),
            (
                "DELETE",
                "/subjects/player.plays-value/versions/1",
                Need::Platform,
            ),
            ("PUT", "/mode/player.plays-value", Need::Platform),
            ("POST", "/associations", Need::Platform),
        ];
        for (method, path, expected) in cases {
            assert_eq!(
                need(method, path, alias).unwrap(),
                expected,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn a_domain_writes_its_own_subjects_only_and_platform_everything() {
        let mine = Need::Subject("player.plays-value".into());
        let theirs = Need::Subject("labels.onboarded-value".into());
        assert!(decide(Some("player"), &mine, true).is_ok());
        let refused = decide(Some("player"), &theirs, true).unwrap_err();
        assert_eq!((refused.status, refused.code), (403, 40301));
        assert!(
            refused.message.contains("labels.onboarded-value"),
            "{refused}"
        );
        // `player` is not a prefix of `playerx`
        assert!(decide(
            Some("player"),
            &Need::Subject("playerx.a-value".into()),
            true
        )
        .is_err());
        assert_eq!(
            decide(Some("player"), &Need::Platform, true)
                .unwrap_err()
                .code,
            40301
        );
        assert!(decide(Some(PLATFORM), &theirs, true).is_ok());
        assert!(decide(Some(PLATFORM), &Need::Platform, true).is_ok());
        let anonymous = decide(None, &mine, true).unwrap_err();
        assert_eq!((anonymous.status, anonymous.code), (401, 40101));
    }

    #[test]
    fn reads_are_open_unless_closed() {
        assert!(decide(None, &Need::Read, true).is_ok());
        assert_eq!(decide(None, &Need::Read, false).unwrap_err().code, 40101);
        assert!(decide(Some("labels"), &Need::Read, false).is_ok());
    }
}
