//! `/health/detailed`: a pure rendering of what the gateway knows about itself.
//!
//! The gateway gathers the facts (config version, upstream states) and serves the answer;
//! nothing here does I/O.
//!
//! ```json
//! {"status":"degraded","version":"0.1.0","uptime_seconds":3600,"config_version":4,
//!  "upstreams":[{"name":"azure","state":"unhealthy","detail":"3 consecutive timeouts"},
//!               {"name":"openai","state":"healthy"}]}
//! ```

use std::time::Duration;

use serde::Serialize;

/// The report's verdict on one upstream: the gateway's finer upstream status (circuit open,
/// check failing, cooling down) reduced to what a probe needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamVerdict {
    /// Answering.
    Healthy,
    /// Failing (connect errors, timeouts, 5xx) or ejected.
    Unhealthy,
    /// Not used or not checked yet.
    Unknown,
}

/// One upstream's line in the report: a rendering for operators, not the circuit state the
/// gateway routes by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpstreamReport {
    /// Configured name.
    pub name: String,
    /// Its verdict (the JSON field is `state`).
    pub state: UpstreamVerdict,
    /// A short explanation for operators; must not contain secrets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OverallStatus {
    /// No upstream is known to be unhealthy.
    Ok,
    /// Some upstreams are unhealthy, some are not.
    Degraded,
    /// Every upstream is unhealthy (or there are none and something is wrong).
    Down,
}

/// The `/health/detailed` document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// The overall verdict.
    pub status: OverallStatus,
    /// The build version.
    pub version: String,
    /// Whole seconds since start.
    pub uptime_seconds: u64,
    /// The version of the configuration in force (increments on each successful reload).
    pub config_version: u64,
    /// Upstreams, sorted by name.
    pub upstreams: Vec<UpstreamReport>,
}

impl HealthReport {
    /// Builds the report; the verdict is `down` when every upstream is unhealthy,
    /// `degraded` when some are, `ok` otherwise (no upstreams at all is `ok`: the gateway
    /// itself is up).
    pub fn new(
        version: &str,
        uptime: Duration,
        config_version: u64,
        mut upstreams: Vec<UpstreamReport>,
    ) -> HealthReport {
        upstreams.sort_by(|a, b| a.name.cmp(&b.name));
        let unhealthy = upstreams
            .iter()
            .filter(|u| u.state == UpstreamVerdict::Unhealthy)
            .count();
        let status = match unhealthy {
            0 => OverallStatus::Ok,
            n if n == upstreams.len() => OverallStatus::Down,
            _ => OverallStatus::Degraded,
        };
        HealthReport {
            status,
            version: version.to_owned(),
            uptime_seconds: uptime.as_secs(),
            config_version,
            upstreams,
        }
    }

    /// The JSON body.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            // Only strings and numbers inside: cannot fail, but never panic on a probe.
            format!(
                r#"{{"status":"down","error":"{}"}}"#,
                e.to_string().replace('"', "'")
            )
        })
    }

    /// The HTTP status to answer with: 503 when `down`, else 200 (a degraded gateway still
    /// serves what it can).
    pub fn http_status(&self) -> u16 {
        match self.status {
            OverallStatus::Down => 503,
            OverallStatus::Ok | OverallStatus::Degraded => 200,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(name: &str, state: UpstreamVerdict) -> UpstreamReport {
        UpstreamReport {
            name: name.into(),
            state,
            detail: None,
        }
    }

    #[test]
    fn renders_the_documented_shape() {
        let report = HealthReport::new(
            "1.2.3",
            Duration::from_millis(3_600_900),
            4,
            vec![
                upstream("openai", UpstreamVerdict::Healthy),
                UpstreamReport {
                    detail: Some("3 consecutive timeouts".into()),
                    ..upstream("azure", UpstreamVerdict::Unhealthy)
                },
            ],
        );
        let v: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "status": "degraded", "version": "1.2.3", "uptime_seconds": 3600,
                "config_version": 4,
                "upstreams": [
                    {"name": "azure", "state": "unhealthy", "detail": "3 consecutive timeouts"},
                    {"name": "openai", "state": "healthy"}
                ]
            })
        );
        assert_eq!(report.http_status(), 200);
    }

    #[test]
    fn verdicts() {
        let ok = HealthReport::new(
            "v",
            Duration::ZERO,
            1,
            vec![upstream("a", UpstreamVerdict::Unknown)],
        );
        assert_eq!(ok.status, OverallStatus::Ok);
        let none = HealthReport::new("v", Duration::ZERO, 1, vec![]);
        assert_eq!(none.status, OverallStatus::Ok);
        let down = HealthReport::new(
            "v",
            Duration::ZERO,
            1,
            vec![upstream("a", UpstreamVerdict::Unhealthy)],
        );
        assert_eq!(down.status, OverallStatus::Down);
        assert_eq!(down.http_status(), 503);
    }
}
