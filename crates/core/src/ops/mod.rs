//! Every op of the engine, one file per family; each file holds forward and backward together.

pub mod attention;
pub mod cast;
pub mod compare;
pub mod conv;
pub mod dropout;
pub mod elementwise;
pub mod embedding;
pub mod gru;
pub mod index;
pub mod loss;
pub mod lstm;
pub mod matmul;
pub mod norm;
pub mod optim;
pub mod pool;
pub mod reduce;
pub mod rnn;
mod rnn_device;
mod rnn_fast;
pub mod rnn_pair;
pub mod shape;
pub mod softmax;
