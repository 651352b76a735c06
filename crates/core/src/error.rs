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
    Image,
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
            ErrorKind::Image => "ImageError",
            ErrorKind::Internal => "InternalError",
        }
    }

    /// The stable machine-readable code: the JS error's `code`, which `src/errors.ts` maps to
    /// the class of [`ErrorKind::class_name`].
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Shape => "ERR_SHAPE",
            ErrorKind::DType => "ERR_DTYPE",
            ErrorKind::Device => "ERR_DEVICE",
            ErrorKind::Disposed => "ERR_DISPOSED",
            ErrorKind::CudaUnavailable => "ERR_CUDA_UNAVAILABLE",
            ErrorKind::Checkpoint => "ERR_CHECKPOINT",
            ErrorKind::Value => "ERR_VALUE",
            ErrorKind::Memory => "ERR_MEMORY",
            ErrorKind::Image => "ERR_IMAGE",
            ErrorKind::Internal => "ERR_INTERNAL",
        }
    }

    /// Every kind, for tests that check the mapping in each layer.
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::Shape,
        ErrorKind::DType,
        ErrorKind::Device,
        ErrorKind::Disposed,
        ErrorKind::CudaUnavailable,
        ErrorKind::Checkpoint,
        ErrorKind::Value,
        ErrorKind::Memory,
        ErrorKind::Image,
        ErrorKind::Internal,
    ];
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
    /// An image file that cannot be read, decoded or written; `msg` names the file.
    #[error("{op}: {msg}")]
    Image { op: String, msg: String },
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
            Error::Image { .. } => ErrorKind::Image,
            Error::Internal { .. } => ErrorKind::Internal,
        }
    }

    /// The op that failed, as the message starts with it (`checkpoint` for file errors, whose
    /// binding names the JS function instead).
    pub fn op(&self) -> &str {
        match self {
            Error::Shape { op, .. }
            | Error::DType { op, .. }
            | Error::Device { op, .. }
            | Error::Disposed { op }
            | Error::CudaUnavailable { op, .. }
            | Error::Value { op, .. }
            | Error::Memory { op, .. }
            | Error::Image { op, .. }
            | Error::Internal { op, .. } => op,
            Error::Checkpoint { .. } => "checkpoint",
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
    /// An image file error: `cannot <verb> '<path>': <reason>`.
    pub fn image(op: &str, verb: &str, path: &std::path::Path, reason: impl fmt::Display) -> Self {
        Error::Image { op: op.into(), msg: format!("cannot {verb} '{}': {reason}", path.display()) }
    }
    pub fn internal(op: &str, msg: impl fmt::Display) -> Self {
        Error::Internal { op: op.into(), msg: msg.to_string() }
    }
}

/// The text of a caught panic's payload (`panic!` with a literal or a formatted message), for
/// the `InternalError` that replaces it. The one place that reads panic payloads: the executor,
/// the CUDA probes and the Node binding all catch panics and report them with this.
pub fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => p.downcast_ref::<&str>().map(|s| s.to_string()).unwrap_or_else(|| "panic".into()),
    }
}

/// Formats a shape the way users write it: `[32, 50, 64]`.
pub fn fmt_shape(shape: &[usize]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_distinct_code_and_class() {
        let codes: std::collections::HashSet<_> = ErrorKind::ALL.iter().map(|k| k.code()).collect();
        let classes: std::collections::HashSet<_> = ErrorKind::ALL.iter().map(|k| k.class_name()).collect();
        assert_eq!(codes.len(), ErrorKind::ALL.len());
        assert_eq!(classes.len(), ErrorKind::ALL.len());
        assert_eq!(ErrorKind::Shape.code(), "ERR_SHAPE");
        assert_eq!(ErrorKind::CudaUnavailable.code(), "ERR_CUDA_UNAVAILABLE");
    }

    #[test]
    fn the_message_starts_with_the_op() {
        for e in [
            Error::shape("matmul", "[2, 3]", "[4, 5]"),
            Error::dtype("add", "float32", "int32"),
            Error::Disposed { op: "data".into() },
            Error::value("dropout", "p must be in [0, 1)"),
            Error::image("readImage", "read", std::path::Path::new("a.png"), "no such file"),
            Error::internal("lstm", "boom"),
        ] {
            assert!(e.to_string().starts_with(&format!("{}: ", e.op())), "{e}");
        }
        assert_eq!(Error::Checkpoint { msg: "short file".into() }.op(), "checkpoint");
    }

    #[test]
    fn panic_payloads_become_their_text() {
        let literal = std::panic::catch_unwind(|| panic!("a literal")).unwrap_err();
        assert_eq!(panic_message(literal), "a literal");
        let n = 3;
        let formatted = std::panic::catch_unwind(move || panic!("formatted {n}")).unwrap_err();
        assert_eq!(panic_message(formatted), "formatted 3");
        let other = std::panic::catch_unwind(|| std::panic::panic_any(7_u8)).unwrap_err();
        assert_eq!(panic_message(other), "panic");
    }
}
