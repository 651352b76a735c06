//! The one error type of the engine: every failure names the op, what it expected and what it got.

use std::fmt;

/// Stable error kinds; the binding maps each to a JS error class of the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    Shape,
    DType,
    Device,
    Disposed,
    CudaUnavailable,
    Checkpoint,
    Value,
    Memory,
    Internal,
}

impl ErrorKind {
    /// The JS class name the binding throws for this kind.
    pub fn class_name(self) -> &'static str {
        match self {
            ErrorKind::Shape => "ShapeError",
            ErrorKind::DType => "DTypeError",
            ErrorKind::Device => "DeviceError",
            ErrorKind::Disposed => "DisposedError",
            ErrorKind::CudaUnavailable => "CudaUnavailableError",
            ErrorKind::Checkpoint => "CheckpointError",
            ErrorKind::Value => "ValueError",
            ErrorKind::Memory => "MemoryError",
            ErrorKind::Internal => "InternalError",
        }
    }
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    #[error("{op}: expected {expected}, got {got}")]
    Shape { op: String, expected: String, got: String },
    #[error("{op}: expected dtype {expected}, got {got}")]
    DType { op: String, expected: String, got: String },
    #[error("{op}: expected all tensors on {expected}, got {got}")]
    Device { op: String, expected: String, got: String },
    #[error("{op}: tensor was used after dispose()")]
    Disposed { op: String },
    #[error("{op}: CUDA is unavailable: {reason}")]
    CudaUnavailable { op: String, reason: String },
    #[error("checkpoint: {msg}")]
    Checkpoint { msg: String },
    #[error("{op}: {msg}")]
    Value { op: String, msg: String },
    #[error("{op}: cannot allocate {what}")]
    Memory { op: String, what: String },
    #[error("{op}: internal error: {msg}")]
    Internal { op: String, msg: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Shape { .. } => ErrorKind::Shape,
            Error::DType { .. } => ErrorKind::DType,
            Error::Device { .. } => ErrorKind::Device,
            Error::Disposed { .. } => ErrorKind::Disposed,
            Error::CudaUnavailable { .. } => ErrorKind::CudaUnavailable,
            Error::Checkpoint { .. } => ErrorKind::Checkpoint,
            Error::Value { .. } => ErrorKind::Value,
            Error::Memory { .. } => ErrorKind::Memory,
            Error::Internal { .. } => ErrorKind::Internal,
        }
    }

    pub fn shape(op: &str, expected: impl fmt::Display, got: impl fmt::Display) -> Self {
        Error::Shape { op: op.into(), expected: expected.to_string(), got: got.to_string() }
    }
    pub fn dtype(op: &str, expected: impl fmt::Display, got: impl fmt::Display) -> Self {
        Error::DType { op: op.into(), expected: expected.to_string(), got: got.to_string() }
    }
    pub fn value(op: &str, msg: impl fmt::Display) -> Self {
        Error::Value { op: op.into(), msg: msg.to_string() }
    }
    pub fn internal(op: &str, msg: impl fmt::Display) -> Self {
        Error::Internal { op: op.into(), msg: msg.to_string() }
    }
}

/// Formats a shape the way users write it: `[32, 50, 64]`.
pub fn fmt_shape(shape: &[usize]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}
