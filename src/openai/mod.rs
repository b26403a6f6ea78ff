//! The parts of OpenAI's wire format the gateway needs: endpoints, request fields, error bodies.

pub mod content;
pub mod error;
pub mod members;
pub mod models;
pub mod request;
pub mod sse;
pub mod usage;

pub use error::ApiError;
pub use request::{
    inspect_json, multipart_model, replace_model, Endpoint, JsonRequest, WireFamily,
};
