//! Image files: reading (decode, resize, crop, normalise) and PNG writing run on the libuv pool
//! (AsyncTask), each inside `catch_unwind`; a batch decodes its files on the compute threads.
//! Core image errors reach JS as ImageErrors naming the file.

use crate::errors::Pending;
use crate::tensor::NativeTensor;
use crate::{js_err, sync_external_memory};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use recurrent_core::error::Error as CoreError;
use recurrent_core::image::{self as img, ImageOptions, Resize};
use recurrent_core::Tensor;
use std::path::PathBuf;

/// What `readImages` takes, already checked by `src/data/image.ts`: a resize either to a
/// shorter side (`resizeShorter`) or to `resizeHeight` × `resizeWidth`, an optional centre
/// crop, the channel count, normalisation and the limits.
#[napi(object)]
pub struct ImageReadOptions {
    pub resize_shorter: Option<u32>,
    pub resize_height: Option<u32>,
    pub resize_width: Option<u32>,
    pub crop_height: Option<u32>,
    pub crop_width: Option<u32>,
    pub channels: Option<u32>,
    pub mean: Option<Vec<f64>>,
    pub std: Option<Vec<f64>>,
    pub antialias: Option<bool>,
    pub max_file_bytes: Option<f64>,
    pub max_pixels: Option<f64>,
}

fn core_options(op: &str, o: ImageReadOptions) -> std::result::Result<ImageOptions, CoreError> {
    let d = ImageOptions::default();
    let resize = match (o.resize_shorter, o.resize_height, o.resize_width) {
        (Some(n), None, None) => Some(Resize::Shorter(n as usize)),
        (None, Some(h), Some(w)) => Some(Resize::Exact(h as usize, w as usize)),
        (None, None, None) => None,
        _ => return Err(CoreError::value(op, "resize is either a shorter side or a height and a width")),
    };
    let crop = match (o.crop_height, o.crop_width) {
        (Some(h), Some(w)) => Some((h as usize, w as usize)),
        (None, None) => None,
        _ => return Err(CoreError::value(op, "centerCrop needs a height and a width")),
    };
    let limit = |v: Option<f64>, default: u64, what: &str| match v {
        None => Ok(default),
        Some(x) if x.is_finite() && x >= 1.0 => Ok(x as u64),
        Some(x) => Err(CoreError::value(op, format!("{what} must be a positive number, got {x}"))),
    };
    Ok(ImageOptions {
        resize,
        crop,
        channels: o.channels.unwrap_or(3) as usize,
        mean: o.mean.unwrap_or_default().into_iter().map(|v| v as f32).collect(),
        std: o.std.unwrap_or_default().into_iter().map(|v| v as f32).collect(),
        antialias: o.antialias.unwrap_or(d.antialias),
        max_file_bytes: limit(o.max_file_bytes, d.max_file_bytes, "maxFileBytes")?,
        max_pixels: limit(o.max_pixels, d.max_pixels, "maxPixels")?,
    })
}

/// Reads and stacks image files on the libuv pool.
pub struct ReadImagesTask {
    op: &'static str,
    paths: Vec<PathBuf>,
    options: ImageOptions,
    failure: Pending,
}

#[napi]
impl Task for ReadImagesTask {
    type Output = Tensor;
    type JsValue = NativeTensor;

    fn compute(&mut self) -> Result<Tensor> {
        let (op, paths, options) = (self.op, &self.paths, &self.options);
        self.failure.run(op, || {
            if op == "readImage" {
                img::read_image(op, &paths[0], options)
            } else {
                img::read_images(op, paths, options)
            }
        })
    }

    fn resolve(&mut self, env: Env, out: Tensor) -> Result<NativeTensor> {
        sync_external_memory(&env);
        Ok(NativeTensor::new(out))
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> Result<NativeTensor> {
        self.failure.reject(&env, err)
    }
}

/// Reads image files (PNG or JPEG, told apart by content) into one float32 tensor: with
/// `single`, one path into `[C, H, W]`, else `[B, C, H, W]`. Never blocks the JS thread;
/// a file that cannot be read or decoded rejects with an ImageError naming it.
#[napi(catch_unwind)]
pub fn read_images(paths: Vec<String>, options: ImageReadOptions, single: bool) -> Result<AsyncTask<ReadImagesTask>> {
    let op = if single { "readImage" } else { "readImages" };
    if single && paths.len() != 1 {
        return Err(js_err(CoreError::value(op, format!("expected one path, got {}", paths.len()))));
    }
    let options = core_options(op, options).map_err(js_err)?;
    options.validate(op).map_err(js_err)?;
    Ok(AsyncTask::new(ReadImagesTask {
        op,
        paths: paths.into_iter().map(PathBuf::from).collect(),
        options,
        failure: Pending::default(),
    }))
}

/// Encodes and writes a PNG on the libuv pool.
pub struct WritePngTask {
    path: PathBuf,
    tensor: Option<Tensor>,
    failure: Pending,
}

#[napi]
impl Task for WritePngTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        let (path, tensor) = (&self.path, self.tensor.take());
        self.failure.run("writePng", || match tensor {
            Some(t) => img::write_png("writePng", path, &t),
            None => Err(CoreError::internal("writePng", "the task ran twice")),
        })
    }

    fn resolve(&mut self, env: Env, _out: ()) -> Result<()> {
        sync_external_memory(&env);
        Ok(())
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> Result<()> {
        self.failure.reject(&env, err)
    }
}

/// Writes a `[3, H, W]` or `[1, H, W]` float tensor with values in [0, 1] (clamped) as an
/// 8-bit RGB or grey PNG, atomically. The tensor is captured as it is at this call.
#[napi(catch_unwind)]
pub fn write_png(path: String, tensor: &NativeTensor) -> Result<AsyncTask<WritePngTask>> {
    let t = tensor.get("writePng")?.detach();
    Ok(AsyncTask::new(WritePngTask { path: PathBuf::from(path), tensor: Some(t), failure: Pending::default() }))
}
