//! Every op of the engine, one file per family; each file holds forward and backward together.

pub mod elementwise;
