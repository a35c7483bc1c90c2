//! The registry's audit trail: every write, config or mode change and delete, accepted or
//! refused, as one record of the topic `<registry topic>-audit` (kept as long as the broker
//! keeps data, never compacted) and one structured log line (target `meshline::audit`), each
//! with its principal, subject, version and outcome. `meshline registry audit` lists it.

use std::time::Duration;

use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    message::Message,
    Offset, TopicPartitionList,
};
use serde::{Deserialize, Serialize};

use crate::broker;

/// The audit topic of a registry keeping its state in `topic`.
pub fn topic_of(topic: &str) -> String {
    format!("{topic}-audit")
}

/// One write asked of the registry, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When it was answered (RFC 3339, UTC).
    pub time: String,
    /// Who asked (`None`: no credentials).
    pub principal: Option<String>,
    /// The HTTP method.
    pub method: String,
    /// The path asked, as sent (at most 512 bytes).
    pub path: String,
    /// The subject written, when the path names one.
    pub subject: Option<String>,
    /// The version registered or deleted, when the answer names one.
    pub version: Option<u64>,
    /// The schema id, when the answer names one.
    pub id: Option<u64>,
    /// The HTTP status answered.
    pub status: u16,
    /// `accepted` (2xx) or `refused`.
    pub outcome: String,
    /// The refusal's message, when refused (at most 512 bytes).
    pub message: Option<String>,
}

impl Event {
    /// The event of a write `method` on `path` by `principal`, answered `status` with `body`
    /// (a JSON answer: the version or id it names, or the refusal's message).
    pub fn of(principal: Option<&str>, method: &str, path: &str, status: u16, body: &[u8]) -> Self {
        let answer: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let number = |key: &str| answer.get(key).and_then(serde_json::Value::as_u64);
        let accepted = (200..300).contains(&status);
        let subject = subject_of(path);
        let version = number("version").or_else(|| {
            // DELETE /subjects/{s}/versions/{v} answers the version as a bare number
            (accepted && method == "DELETE" && path.contains("/versions/"))
                .then(|| answer.as_u64())
                .flatten()
        });
        Self {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            principal: principal.map(str::to_owned),
            method: method.to_owned(),
            path: cut(path),
            subject,
            version,
            id: number("id"),
            status,
            outcome: if accepted { "accepted" } else { "refused" }.to_owned(),
            message: (!accepted).then(|| {
                cut(answer
                    .get("message")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default())
            }),
        }
    }

    /// Writes the structured log line of this event.
    pub fn log(&self) {
        tracing::info!(
            target: "meshline::audit",
            principal = self.principal.as_deref().unwrap_or("(none)"),
            method = %self.method,
            path = %self.path,
            subject = self.subject.as_deref(),
            version = self.version,
            id = self.id,
            status = self.status,
            outcome = %self.outcome,
            message = self.message.as_deref(),
            "registry write"
        );
    }

    /// One line for people.
    pub fn line(&self) -> String {
        let mut line = format!(
            "{} {} {} {} {} {}",
            self.time,
            self.principal.as_deref().unwrap_or("(anonymous)"),
            self.method,
            self.path,
            self.status,
            self.outcome
        );
        if let Some(version) = self.version {
            line.push_str(&format!(" version={version}"));
        }
        if let Some(id) = self.id {
            line.push_str(&format!(" id={id}"));
        }
        if let Some(message) = &self.message {
            line.push_str(&format!(" message={message:?}"));
        }
        line
    }
}

/// The subject a registry path writes (`/subjects/{s}/…`, `/config/{s}`, `/mode/{s}`).
fn subject_of(path: &str) -> Option<String> {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    match (segments.next(), segments.next()) {
        (Some("subjects" | "config" | "mode"), Some(subject)) => Some(cut(subject)),
        _ => None,
    }
}

fn cut(text: &str) -> String {
    text.chars().take(512).collect()
}

/// Every event of the audit trail of the registry keeping its state in `topic` at `bootstrap`,
/// oldest first; only those of `subject` when given.
pub fn read(
    bootstrap: &str,
    topic: &str,
    subject: Option<&str>,
) -> Result<Vec<Event>, rdkafka::error::KafkaError> {
    let audit = topic_of(topic);
    let consumer: BaseConsumer = broker::client_config(bootstrap)
        .set("enable.auto.commit", "false")
        .set("group.id", "meshline-audit-reader")
        .create()?;
    let (low, high) = consumer.fetch_watermarks(&audit, 0, Duration::from_secs(10))?;
    let mut events = Vec::new();
    if high <= low {
        return Ok(events);
    }
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(&audit, 0, Offset::Beginning)?;
    consumer.assign(&assignment)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut next = low;
    while next < high && std::time::Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message?;
        next = message.offset() + 1;
        let Some(event) = message
            .payload()
            .and_then(|p| serde_json::from_slice::<Event>(p).ok())
        else {
            continue;
        };
        if subject.is_none_or(|s| event.subject.as_deref() == Some(s)) {
            events.push(event);
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_names_who_wrote_what_and_what_became_of_it() {
        let accepted = Event::of(
            Some("player"),
            "POST",
            "/subjects/player.play-events-value/versions",
            200,
            br#"{"id": 7, "version": 3, "schema": "..."}"#,
        );
        assert_eq!(
            accepted.subject.as_deref(),
            Some("player.play-events-value")
        );
        assert_eq!((accepted.version, accepted.id), (Some(3), Some(7)));
        assert_eq!(accepted.outcome, "accepted");
        assert_eq!(accepted.message, None);
        let refused = Event::of(
            Some("player"),
            "PUT",
            "/config/labels.releases-value",
            403,
            br#"{"error_code": 40301, "message": "principal `player` may write only ..."}"#,
        );
        assert_eq!(refused.outcome, "refused");
        assert!(refused.message.unwrap().starts_with("principal `player`"));
        let deleted = Event::of(None, "DELETE", "/subjects/x/versions/2", 200, b"2");
        assert_eq!(deleted.version, Some(2));
        assert!(deleted
            .line()
            .contains("(anonymous) DELETE /subjects/x/versions/2 200 accepted version=2"));
        let long = "x".repeat(10_000);
        assert_eq!(Event::of(None, "POST", &long, 400, b"").path.len(), 512);
    }
}
