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

/// The JSON body of `GET /v1/models/{id}`.
pub fn model_json(model: &Model) -> Vec<u8> {
    serde_json::to_vec(model).unwrap_or_default()
}
