// TEMPORARY stub of the config API until src/config lands. Not committed.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid: {0}")]
    Invalid(String),
}
pub fn load_file(_p: &std::path::Path) -> Result<Config, ConfigError> {
    Err(ConfigError::Invalid("stub".into()))
}
#[derive(Debug)]
pub struct Config {
    pub environment: String,
    pub listen: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub max_body_bytes: usize,
    pub upstreams: BTreeMap<String, Arc<Upstream>>,
    pub routes: Vec<Route>,
}
#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub base_path: String,
    pub api_key: Option<String>,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub idle_timeout: Duration,
}
impl Upstream {
    pub fn authority(&self) -> String {
        self.host.clone()
    }
    pub fn url_for(&self, rest: &str) -> String {
        format!("{}/{}", self.base_path, rest)
    }
}
#[derive(Debug)]
pub struct Route {
    pub name: String,
    pub matcher: RouteMatch,
    pub upstream: String,
    pub model: Option<String>,
}
#[derive(Debug)]
pub enum RouteMatch {
    Models(Vec<ModelPattern>),
    Paths(Vec<String>),
}
#[derive(Debug)]
pub struct ModelPattern {
    pub pattern: String,
}
impl ModelPattern {
    pub fn matches(&self, m: &str) -> bool {
        m == self.pattern
    }
    pub fn is_glob(&self) -> bool {
        false
    }
}
impl Config {
    pub fn route_for_path(&self, _p: &str) -> Option<&Route> {
        None
    }
    pub fn model_ids(&self) -> Vec<String> {
        vec![]
    }
    pub fn upstream(&self, n: &str) -> Option<&Arc<Upstream>> {
        self.upstreams.get(n)
    }
}
