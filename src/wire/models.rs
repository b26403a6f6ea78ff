//! `GET /v1/models`, answered by the gateway from its configuration.

use serde::Serialize;

/// One entry of the model list, in OpenAI's shape.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Model {
    /// The model name clients send.
    pub id: String,
    /// Always `"model"`.
    pub object: &'static str,
    /// Unix time the gateway loaded its configuration.
    pub created: u64,
    /// The upstream serving it.
    pub owned_by: String,
}

/// The list answer: `{"object": "list", "data": [...]}`.
#[derive(Debug, Serialize)]
pub struct ModelList<'a> {
    /// Always `"list"`.
    pub object: &'static str,
    /// The models.
    pub data: &'a [Model],
}

impl Model {
    /// A model entry.
    pub fn new(id: impl Into<String>, owned_by: impl Into<String>, created: u64) -> Self {
        Model {
            id: id.into(),
            object: "model",
            created,
            owned_by: owned_by.into(),
        }
    }
}

/// The JSON body of `GET /v1/models`.
pub fn list_json(models: &[Model]) -> Vec<u8> {
    serde_json::to_vec(&ModelList {
        object: "list",
        data: models,
    })
    .unwrap_or_else(|_| br#"{"object":"list","data":[]}"#.to_vec())
}

/// One model in Anthropic's shape (`GET /v1/models` asked by an Anthropic client, which sends
/// `anthropic-version`).
fn anthropic_model(model: &Model) -> serde_json::Value {
    let created = std::time::UNIX_EPOCH + std::time::Duration::from_secs(model.created);
    serde_json::json!({
        "type": "model",
        "id": model.id,
        "display_name": model.id,
        "created_at": crate::telemetry::rfc3339(created),
    })
}

/// The list answer in Anthropic's shape: `{"data", "has_more", "first_id", "last_id"}`.
pub fn list_json_anthropic(models: &[Model]) -> Vec<u8> {
    let data: Vec<serde_json::Value> = models.iter().map(anthropic_model).collect();
    serde_json::to_vec(&serde_json::json!({
        "data": data,
        "has_more": false,
        "first_id": models.first().map(|m| m.id.as_str()),
        "last_id": models.last().map(|m| m.id.as_str()),
    }))
    .unwrap_or_default()
}

/// `GET /v1/models/{id}` in Anthropic's shape.
pub fn model_json_anthropic(model: &Model) -> Vec<u8> {
    serde_json::to_vec(&anthropic_model(model)).unwrap_or_default()
}

/// The JSON body of `GET /v1/models/{id}`.
pub fn model_json(model: &Model) -> Vec<u8> {
    serde_json::to_vec(model).unwrap_or_default()
}
