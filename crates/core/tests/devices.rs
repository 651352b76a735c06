//! Without a registered CUDA backend (this test binary registers none), every CUDA request is
//! a clear CudaUnavailable error and the CPU keeps working.

use recurrent_core::{DType, Device, ErrorKind, Tensor};

#[test]
fn cuda_requests_fail_clearly_and_cpu_carries_on() {
    let t = Tensor::randn(&[2, 3], DType::F32, 1).unwrap();
    let err = t.to(Device::Cuda(0)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CudaUnavailable);
    let msg = err.to_string();
    assert!(msg.contains("to") && msg.contains("no CUDA backend"), "{msg}");
    assert_eq!(Device::parse("cuda:1").unwrap(), Device::Cuda(1));
    let msg = Device::parse("gpu").unwrap_err().to_string();
    assert!(msg.contains("'cpu', 'cuda' or 'cuda:N'") && msg.contains("'gpu'"), "{msg}");
    // Same device: no copy, the same tensor.
    assert_eq!(t.to(Device::Cpu).unwrap().id(), t.id());
    let y = recurrent_core::ops::elementwise::tanh(&t).unwrap();
    assert_eq!(y.to_vec_f32().unwrap().len(), 6);
}
