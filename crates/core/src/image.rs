//! Image files as tensors: PNG and JPEG decoded natively, resized, centre-cropped and normalised
//! the way torchvision's `Resize`, `CenterCrop`, `ToTensor` and `Normalize` are; and tensors
//! written back as PNG pictures.
//!
//! Every file is bounded before it is decoded: its size against `max_file_bytes`, and the
//! width × height its header declares against `max_pixels`, so a small hostile file (a
//! decompression bomb) is refused before it allocates. The output size is checked the same way,
//! since a resize of a very long, thin image on its shorter side could ask for billions of
//! pixels.

use crate::error::{Error, Result};
use crate::storage::{try_filled, try_with_capacity, CpuStorage};
use crate::tensor::Tensor;
use ::image::{DynamicImage, ImageDecoder, ImageEncoder, ImageFormat, ImageReader, Limits};
use rayon::prelude::*;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

/// Largest file read by default (bytes). A 100-megapixel JPEG is a few tens of MB; a PNG of
/// that size rarely passes 300 MB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 256 << 20;

/// Most pixels (width × height) an image may declare, and its resized output may have, by
/// default: above a 10000 × 10000 photograph, and about what Pillow warns at.
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;

/// How an image is resized before the crop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resize {
    /// The shorter side becomes this, the longer one keeps the aspect ratio (rounded down),
    /// as torchvision's `Resize(n)` does.
    Shorter(usize),
    /// Exactly this height and width, as torchvision's `Resize((h, w))`.
    Exact(usize, usize),
}

/// What to do with each image after decoding.
#[derive(Clone, Debug)]
pub struct ImageOptions {
    /// Resize first (none: keep the decoded size).
    pub resize: Option<Resize>,
    /// Then crop the centre to (height, width); a crop larger than the image pads with zeros.
    pub crop: Option<(usize, usize)>,
    /// 3 (RGB) or 1 (grey: ITU-R 601 luma of RGB images, grey images as they are).
    pub channels: usize,
    /// Subtracted per channel after scaling to [0, 1]: empty (0), one value, or one per channel.
    pub mean: Vec<f32>,
    /// Divides per channel after the mean: empty (1), one value, or one per channel.
    pub std: Vec<f32>,
    /// Low-pass filter when shrinking (torchvision's `antialias=True`, PIL's resize); off, a
    /// shrink samples like plain bilinear interpolation (`F.interpolate(mode='bilinear')`).
    pub antialias: bool,
    /// Largest file size accepted, in bytes.
    pub max_file_bytes: u64,
    /// Most pixels an image may declare in its header, and its output may have.
    pub max_pixels: u64,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions {
            resize: None,
            crop: None,
            channels: 3,
            mean: Vec::new(),
            std: Vec::new(),
            antialias: true,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            max_pixels: DEFAULT_MAX_PIXELS,
        }
    }
}

impl ImageOptions {
    /// Checks the options themselves (no file involved): ValueErrors naming `op`.
    pub fn validate(&self, op: &str) -> Result<()> {
        if self.channels != 1 && self.channels != 3 {
            return Err(Error::value(op, format!("channels must be 3 or 1, got {}", self.channels)));
        }
        let sizes = match self.resize {
            Some(Resize::Shorter(n)) => vec![n],
            Some(Resize::Exact(h, w)) => vec![h, w],
            None => vec![],
        };
        if sizes.contains(&0) {
            return Err(Error::value(op, "resize sizes must be positive"));
        }
        if matches!(self.crop, Some((h, w)) if h == 0 || w == 0) {
            return Err(Error::value(op, "centerCrop sizes must be positive"));
        }
        for (name, v) in [("mean", &self.mean), ("std", &self.std)] {
            if !(v.is_empty() || v.len() == 1 || v.len() == self.channels) {
                return Err(Error::value(
                    op,
                    format!("{name} must have 1 or {} values (one per channel), got {}", self.channels, v.len()),
                ));
            }
            if v.iter().any(|x| !x.is_finite()) {
                return Err(Error::value(op, format!("{name} values must be finite")));
            }
        }
        if self.std.contains(&0.0) {
            return Err(Error::value(op, "std values must be non-zero"));
        }
        if self.max_file_bytes == 0 || self.max_pixels == 0 {
            return Err(Error::value(op, "maxFileBytes and maxPixels must be positive"));
        }
        Ok(())
    }

    /// The output (height, width) of an image of `h` × `w` pixels, and the size it is resized
    /// to before the crop.
    fn sizes(&self, h: usize, w: usize) -> ((usize, usize), (usize, usize)) {
        let resized = match self.resize {
            None => (h, w),
            Some(Resize::Exact(rh, rw)) => (rh, rw),
            // torchvision: `int(size * long / short)`, a true division truncated.
            Some(Resize::Shorter(n)) if w <= h => ((n as f64 * h as f64 / w as f64) as usize, n),
            Some(Resize::Shorter(n)) => (n, (n as f64 * w as f64 / h as f64) as usize),
        };
        (resized, self.crop.unwrap_or(resized))
    }
}

/// Decoded pixels as planes of values in [0, 1]: `c` (1 or 3) planes of `h` × `w`.
struct Planes {
    c: usize,
    h: usize,
    w: usize,
    data: Vec<f32>,
}

/// Interleaved samples of `n` channels (grey, grey+alpha, RGB, RGBA) to planes: grey stays one
/// plane (replicated only after the resize, which is cheaper), alpha is dropped, and RGB becomes
/// its luma when `grey` is asked for.
fn planes_of<T: Copy>(
    op: &str, raw: &[T], n: usize, h: usize, w: usize, grey: bool, unit: impl Fn(T) -> f32,
) -> Result<Planes> {
    let px = h * w;
    if n <= 2 {
        let mut data = try_with_capacity(op, px)?;
        data.extend(raw.chunks_exact(n).map(|p| unit(p[0])));
        return Ok(Planes { c: 1, h, w, data });
    }
    if grey {
        let mut data = try_with_capacity(op, px)?;
        // ITU-R 601-2 luma, the weights of PIL's `convert('L')` and torchvision's
        // `rgb_to_grayscale`, on the unrounded values.
        data.extend(raw.chunks_exact(n).map(|p| 0.299 * unit(p[0]) + 0.587 * unit(p[1]) + 0.114 * unit(p[2])));
        return Ok(Planes { c: 1, h, w, data });
    }
    let mut data = try_filled(op, 3 * px, 0.0f32)?;
    let (r, rest) = data.split_at_mut(px);
    let (g, b) = rest.split_at_mut(px);
    for (i, p) in raw.chunks_exact(n).enumerate() {
        r[i] = unit(p[0]);
        g[i] = unit(p[1]);
        b[i] = unit(p[2]);
    }
    Ok(Planes { c: 3, h, w, data })
}

fn to_planes(op: &str, img: &DynamicImage, grey: bool) -> Result<Planes> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let u8s = |v: u8| v as f32 / 255.0;
    // 16-bit samples keep their precision: v / 65535 (not rounded to 8 bits first).
    let u16s = |v: u16| v as f32 / 65535.0;
    let f32s = |v: f32| v;
    match img {
        DynamicImage::ImageLuma8(b) => planes_of(op, b.as_raw(), 1, h, w, grey, u8s),
        DynamicImage::ImageLumaA8(b) => planes_of(op, b.as_raw(), 2, h, w, grey, u8s),
        DynamicImage::ImageRgb8(b) => planes_of(op, b.as_raw(), 3, h, w, grey, u8s),
        DynamicImage::ImageRgba8(b) => planes_of(op, b.as_raw(), 4, h, w, grey, u8s),
        DynamicImage::ImageLuma16(b) => planes_of(op, b.as_raw(), 1, h, w, grey, u16s),
        DynamicImage::ImageLumaA16(b) => planes_of(op, b.as_raw(), 2, h, w, grey, u16s),
        DynamicImage::ImageRgb16(b) => planes_of(op, b.as_raw(), 3, h, w, grey, u16s),
        DynamicImage::ImageRgba16(b) => planes_of(op, b.as_raw(), 4, h, w, grey, u16s),
        DynamicImage::ImageRgb32F(b) => planes_of(op, b.as_raw(), 3, h, w, grey, f32s),
        DynamicImage::ImageRgba32F(b) => planes_of(op, b.as_raw(), 4, h, w, grey, f32s),
        // The enum may grow; PNG and JPEG decode to the layouts above.
        _ => planes_of(op, img.to_rgb32f().as_raw(), 3, h, w, grey, f32s),
    }
}

/// The taps of one output index along an axis: the first input index and its weights.
struct Taps {
    start: usize,
    weights: Vec<f32>,
}

/// Resampling weights along one axis: `in_len` inputs resized to `out_len`, of which outputs
/// `offset .. offset + count` are kept (the crop; indices outside `0 .. out_len` are padding,
/// with no taps). The bilinear (triangle) filter at half-pixel centres; with `antialias`, its
/// support widens by the shrink factor so that every input pixel contributes (the scheme of
/// PIL's resize and of torch's `antialias=True`), else it is plain bilinear interpolation with
/// edge clamping (`align_corners=False`).
fn axis_taps(in_len: usize, out_len: usize, offset: isize, count: usize, antialias: bool) -> Vec<Taps> {
    let scale = in_len as f64 / out_len as f64;
    let filterscale = if antialias { scale.max(1.0) } else { 1.0 };
    let support = filterscale;
    (0..count)
        .map(|o| {
            let r = o as isize + offset;
            if r < 0 || r as usize >= out_len {
                return Taps { start: 0, weights: Vec::new() };
            }
            if in_len == out_len {
                return Taps { start: r as usize, weights: vec![1.0] };
            }
            let center = (r as f64 + 0.5) * scale;
            // Truncation toward zero, as the reference implementations do (a negative start
            // is clamped to 0 either way).
            let lo = ((center - support + 0.5) as isize).max(0) as usize;
            let hi = ((center + support + 0.5) as isize).min(in_len as isize).max(lo as isize) as usize;
            let mut w: Vec<f64> = (lo..hi)
                .map(|j| {
                    let x = (j as f64 - center + 0.5) / filterscale;
                    (1.0 - x.abs()).max(0.0)
                })
                .collect();
            let total: f64 = w.iter().sum();
            if total > 0.0 {
                w.iter_mut().for_each(|v| *v /= total);
            }
            Taps { start: lo, weights: w.into_iter().map(|v| v as f32).collect() }
        })
        .collect()
}

/// The crop's offset into the resized image along one axis: torchvision's
/// `int(round((size - crop) / 2))` (round half to even); a crop larger than the image pads
/// `(crop - size) // 2` zeros before it.
fn crop_offset(size: usize, crop: usize) -> isize {
    if crop > size {
        -(((crop - size) / 2) as isize)
    } else {
        ((size - crop) as f64 / 2.0).round_ties_even() as isize
    }
}

/// Resizes and crops every plane of `src` into `out` (`src.c` planes of `oh` × `ow`).
#[allow(clippy::too_many_arguments)]
fn resample_into(
    op: &str, src: &Planes, rh: usize, rw: usize, oh: usize, ow: usize, antialias: bool, out: &mut [f32],
) -> Result<()> {
    let xt = axis_taps(src.w, rw, crop_offset(rw, ow), ow, antialias);
    let yt = axis_taps(src.h, rh, crop_offset(rh, oh), oh, antialias);
    // Only the input rows some output row reads go through the horizontal pass.
    let (row_lo, row_hi) = yt
        .iter()
        .filter(|t| !t.weights.is_empty())
        .fold((usize::MAX, 0), |(lo, hi), t| (lo.min(t.start), hi.max(t.start + t.weights.len())));
    let rows = row_hi.saturating_sub(row_lo);
    let mut tmp = try_filled(op, rows.saturating_mul(ow), 0.0f32)?;
    for c in 0..src.c {
        let plane = &src.data[c * src.h * src.w..(c + 1) * src.h * src.w];
        for (k, row) in tmp.chunks_exact_mut(ow).enumerate() {
            let line = &plane[(row_lo + k) * src.w..(row_lo + k + 1) * src.w];
            for (v, t) in row.iter_mut().zip(&xt) {
                *v = t.weights.iter().zip(&line[t.start..]).map(|(w, x)| w * x).sum();
            }
        }
        let dst = &mut out[c * oh * ow..(c + 1) * oh * ow];
        for (row, t) in dst.chunks_exact_mut(ow).zip(&yt) {
            row.fill(0.0);
            for (k, w) in t.weights.iter().enumerate() {
                let line = &tmp[(t.start + k - row_lo) * ow..(t.start + k - row_lo + 1) * ow];
                row.iter_mut().zip(line).for_each(|(o, x)| *o += w * x);
            }
        }
    }
    Ok(())
}

/// A file's bytes, its size checked against the limit before anything is read.
fn read_bounded(op: &str, path: &Path, limit: u64) -> Result<Vec<u8>> {
    let fail = |reason: String| Error::image(op, "read", path, reason);
    let f = std::fs::File::open(path).map_err(|e| {
        fail(match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".into(),
            std::io::ErrorKind::PermissionDenied => "permission denied".into(),
            _ => e.to_string(),
        })
    })?;
    let md = f.metadata().map_err(|e| fail(e.to_string()))?;
    if md.is_dir() {
        return Err(fail("it is a folder".into()));
    }
    if !md.is_file() {
        return Err(fail("it is not a regular file (a device, pipe or socket)".into()));
    }
    let size = md.len();
    if size > limit {
        return Err(fail(format!("the file has {size} bytes, more than the limit of {limit} (maxFileBytes)")));
    }
    if size == 0 {
        return Err(fail("the file is empty".into()));
    }
    let mut bytes = try_with_capacity(op, size as usize)?;
    // `take` bounds the read even if the file grows meanwhile.
    f.take(size).read_to_end(&mut bytes).map_err(|e| fail(e.to_string()))?;
    Ok(bytes)
}

/// Checks that JPEG data reaches its end-of-image marker. JPEG decoders tolerate a missing
/// tail (the lost blocks come out grey), so a truncated file would otherwise decode; this walks
/// the marker segments by their lengths (so an EXIF thumbnail's own end marker inside an APP1
/// segment does not count) and the entropy-coded data after each start-of-scan up to the next
/// marker. Bytes after the end marker are allowed, as other readers allow them.
fn check_jpeg_complete(bytes: &[u8]) -> std::result::Result<(), String> {
    const TRUNCATED: &str = "truncated JPEG data: the file ends before its end-of-image marker";
    let n = bytes.len();
    let mut i = 2;
    loop {
        // To the next marker: 0xFF (any number of fill bytes) and a code.
        match bytes[i.min(n)..].iter().position(|&b| b == 0xFF) {
            Some(k) => i += k,
            None => return Err(TRUNCATED.into()),
        }
        while i < n && bytes[i] == 0xFF {
            i += 1;
        }
        if i >= n {
            return Err(TRUNCATED.into());
        }
        let code = bytes[i];
        i += 1;
        match code {
            0xD9 => return Ok(()),
            // Markers without a length: restart markers, TEM, a repeated start of image.
            0xD0..=0xD8 | 0x01 => continue,
            _ => {}
        }
        if i + 2 > n {
            return Err(TRUNCATED.into());
        }
        let len = u16::from_be_bytes([bytes[i], bytes[i + 1]]) as usize;
        if len < 2 {
            return Err(format!("corrupt JPEG data: a segment of length {len} at byte {i}"));
        }
        i += len;
        if i > n {
            return Err(TRUNCATED.into());
        }
        if code == 0xDA {
            // Entropy-coded data: 0xFF 0x00 is a stuffed byte and 0xFF 0xD0..D7 a restart
            // marker; any other marker ends the scan.
            loop {
                match bytes[i..].iter().position(|&b| b == 0xFF) {
                    Some(k) => i += k,
                    None => return Err(TRUNCATED.into()),
                }
                let mut j = i + 1;
                while j < n && bytes[j] == 0xFF {
                    j += 1;
                }
                if j >= n {
                    return Err(TRUNCATED.into());
                }
                if bytes[j] == 0x00 || (0xD0..=0xD7).contains(&bytes[j]) {
                    i = j + 1;
                } else {
                    break;
                }
            }
        }
    }
}

/// Decodes PNG or JPEG bytes (the format from the content, not the file name), refusing an
/// image whose declared size is above `max_pixels` before its pixels are decoded.
fn decode(op: &str, path: &Path, bytes: &[u8], max_pixels: u64) -> Result<DynamicImage> {
    let fail = |reason: String| Error::image(op, "read", path, reason);
    let reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| fail(e.to_string()))?;
    let name = match reader.format() {
        Some(ImageFormat::Png) => "PNG",
        Some(ImageFormat::Jpeg) => "JPEG",
        Some(other) => {
            return Err(fail(format!("unsupported format {other:?}: only PNG and JPEG files are read")));
        }
        None => return Err(fail("unsupported format: the content is not a PNG or JPEG image".into())),
    };
    if name == "JPEG" {
        check_jpeg_complete(bytes).map_err(fail)?;
    }
    let corrupt = |e: ::image::ImageError| match e {
        ::image::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            fail(format!("truncated {name} data: the file ends early"))
        }
        ::image::ImageError::Limits(l) => fail(format!("the image is too large to decode: {l}")),
        ::image::ImageError::Unsupported(u) => fail(format!("unsupported {name} variant: {u}")),
        other => fail(format!("corrupt or truncated {name} data: {other}")),
    };
    let mut limits = Limits::default();
    // Room for the largest allowed image at 4 channels of 16 bits; the pixel check below is
    // the real bound, this one keeps the decoders' own buffers in line with it.
    limits.max_alloc = Some(max_pixels.saturating_mul(8).max(64 << 20));
    let mut reader = reader;
    reader.limits(limits.clone());
    let decoder = reader.into_decoder().map_err(corrupt)?;
    let (w, h) = decoder.dimensions();
    let px = w as u64 * h as u64;
    if px > max_pixels {
        return Err(fail(format!(
            "the image is {w}×{h} = {px} pixels, more than the limit of {max_pixels} (maxPixels)"
        )));
    }
    if px == 0 {
        return Err(fail(format!("the {name} header declares an empty image ({w}×{h})")));
    }
    limits.reserve(decoder.total_bytes()).map_err(corrupt)?;
    DynamicImage::from_decoder(decoder).map_err(corrupt)
}

/// A decoded file and the sizes it is resized to and cropped to.
struct Loaded {
    planes: Planes,
    resized: (usize, usize),
    out: (usize, usize),
}

/// Reads and decodes one file, and works out its output size (checked against `max_pixels`).
fn load(op: &str, path: &Path, opts: &ImageOptions) -> Result<Loaded> {
    let bytes = read_bounded(op, path, opts.max_file_bytes)?;
    let img = decode(op, path, &bytes, opts.max_pixels)?;
    drop(bytes);
    let planes = to_planes(op, &img, opts.channels == 1)?;
    drop(img);
    let (resized, out) = opts.sizes(planes.h, planes.w);
    let n = out.0 as u64 * out.1 as u64;
    if n > opts.max_pixels {
        return Err(Error::image(
            op,
            "read",
            path,
            format!(
                "the output image would be {}×{} = {n} pixels, more than the limit of {} (maxPixels)",
                out.1, out.0, opts.max_pixels
            ),
        ));
    }
    Ok(Loaded { planes, resized, out })
}

/// Resizes, crops, replicates grey to RGB and normalises a loaded image into `dst`
/// (`[channels, oh, ow]`).
fn render(op: &str, l: &Loaded, opts: &ImageOptions, dst: &mut [f32]) -> Result<()> {
    let ((rh, rw), (oh, ow)) = (l.resized, l.out);
    resample_into(op, &l.planes, rh, rw, oh, ow, opts.antialias, dst)?;
    if l.planes.c == 1 && opts.channels == 3 {
        let (g, rest) = dst.split_at_mut(oh * ow);
        rest[..oh * ow].copy_from_slice(g);
        rest[oh * ow..].copy_from_slice(g);
    }
    for c in 0..opts.channels {
        let pick = |v: &[f32], default: f32| if v.is_empty() { default } else { v[c.min(v.len() - 1)] };
        let (m, s) = (pick(&opts.mean, 0.0), pick(&opts.std, 1.0));
        if m != 0.0 || s != 1.0 {
            // torchvision's `Normalize`: `(x - mean) / std` in float32.
            dst[c * oh * ow..(c + 1) * oh * ow].iter_mut().for_each(|x| *x = (*x - m) / s);
        }
    }
    Ok(())
}

/// One image file as a `[channels, H, W]` float32 tensor (see [`ImageOptions`]).
pub fn read_image(op: &str, path: &Path, opts: &ImageOptions) -> Result<Tensor> {
    opts.validate(op)?;
    let l = load(op, path, opts)?;
    let (h, w) = l.out;
    let mut out = try_filled(op, opts.channels * h * w, 0.0f32)?;
    render(op, &l, opts, &mut out)?;
    drop(l);
    Tensor::from_storage(CpuStorage::new_f32(out), &[opts.channels, h, w])
}

/// Image files as one `[B, channels, H, W]` float32 tensor. Every image must come out the same
/// size (give a resize and a crop when the files differ). The first file is decoded alone to
/// learn that size; the others are decoded in parallel, each straight into its place in the
/// batch.
pub fn read_images(op: &str, paths: &[PathBuf], opts: &ImageOptions) -> Result<Tensor> {
    opts.validate(op)?;
    let Some(first) = paths.first() else {
        return Err(Error::value(op, "expected at least one image path"));
    };
    let l = load(op, first, opts)?;
    let (h, w) = l.out;
    let per = opts.channels * h * w;
    let total = per.checked_mul(paths.len()).ok_or_else(|| Error::value(op, "the batch is too large"))?;
    let mut out = try_filled(op, total, 0.0f32)?;
    render(op, &l, opts, &mut out[..per])?;
    drop(l);
    let results: Vec<Result<()>> = out[per..]
        .par_chunks_mut(per)
        .zip(&paths[1..])
        .map(|(chunk, path)| {
            let l = load(op, path, opts)?;
            if l.out != (h, w) {
                let c = opts.channels;
                return Err(Error::image(
                    op,
                    "read",
                    path,
                    format!(
                        "it comes out {c}×{}×{} where '{}' comes out {c}×{h}×{w}: pass size (or resize and centerCrop) so that every image has the same size",
                        l.out.0,
                        l.out.1,
                        first.display()
                    ),
                ));
            }
            render(op, &l, opts, chunk)
        })
        .collect();
    // The first failure in path order, whichever thread met it first.
    results.into_iter().collect::<Result<Vec<()>>>()?;
    Tensor::from_storage(CpuStorage::new_f32(out), &[paths.len(), opts.channels, h, w])
}

/// Writes a `[3, H, W]` or `[1, H, W]` float tensor (values in [0, 1], clamped; NaN as 0) to
/// `path` as an 8-bit RGB or grey PNG, atomically (see [`crate::io::write_atomic`]).
pub fn write_png(op: &str, path: &Path, t: &Tensor) -> Result<()> {
    let shape = t.shape();
    if shape.len() != 3 || !(shape[0] == 1 || shape[0] == 3) {
        return Err(Error::shape(op, "a [3, H, W] or [1, H, W] tensor", crate::error::fmt_shape(shape)));
    }
    if !t.dtype().is_float() {
        return Err(Error::dtype(op, "float32 or float64", t.dtype().name()));
    }
    let (c, h, w) = (shape[0], shape[1], shape[2]);
    if h > u32::MAX as usize || w > u32::MAX as usize {
        return Err(Error::shape(op, "at most 2^32 - 1 pixels a side", crate::error::fmt_shape(shape)));
    }
    let s = t.storage()?;
    let byte = |v: f64| if v.is_nan() { 0 } else { (v.clamp(0.0, 1.0) * 255.0).round() as u8 };
    let px = h * w;
    let mut buf: Vec<u8> = try_filled(op, c * px, 0u8)?;
    let at = |i: usize| -> f64 {
        match &*s {
            CpuStorage::F32(v) => v[i] as f64,
            CpuStorage::F64(v) => v[i],
            CpuStorage::I32(v) => v[i] as f64,
        }
    };
    // Planar [C, H, W] to the interleaved rows PNG stores.
    for p in 0..px {
        for ch in 0..c {
            buf[p * c + ch] = byte(at(ch * px + p));
        }
    }
    let color = if c == 3 { ::image::ExtendedColorType::Rgb8 } else { ::image::ExtendedColorType::L8 };
    let mut png = Vec::new();
    ::image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&buf, w as u32, h as u32, color)
        .map_err(|e| Error::image(op, "write", path, e))?;
    crate::io::write_atomic(path, &png).map_err(|e| match e {
        Error::Checkpoint { msg } => Error::Image { op: op.into(), msg },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::image::{ImageBuffer, Luma, Rgb, Rgba};

    /// A fresh folder for one test's files.
    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("recurrent-image-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn save(d: &Path, name: &str, img: &DynamicImage, format: ImageFormat) -> PathBuf {
        let p = d.join(name);
        img.save_with_format(&p, format).unwrap();
        p
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.to_vec_f32().unwrap()
    }

    /// A PNG written by hand (stored deflate blocks), for the colour types the encoder of the
    /// `image` crate does not write (palettes).
    fn handmade_png(w: u32, h: u32, depth: u8, color: u8, extra: &[(&[u8; 4], Vec<u8>)], rows: &[Vec<u8>]) -> Vec<u8> {
        fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let mut body = kind.to_vec();
            body.extend_from_slice(data);
            out.extend_from_slice(&body);
            out.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
        }
        let mut raw = Vec::new();
        for r in rows {
            raw.push(0); // filter: none
            raw.extend_from_slice(r);
        }
        // zlib: header, one stored block, Adler-32.
        let mut z = vec![0x78, 0x01, 0x01];
        z.extend_from_slice(&(raw.len() as u16).to_le_bytes());
        z.extend_from_slice(&(!(raw.len() as u16)).to_le_bytes());
        z.extend_from_slice(&raw);
        let (mut a, mut b) = (1u32, 0u32);
        for &x in &raw {
            a = (a + x as u32) % 65521;
            b = (b + a) % 65521;
        }
        z.extend_from_slice(&((b << 16) | a).to_be_bytes());
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&w.to_be_bytes());
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[depth, color, 0, 0, 0]);
        chunk(&mut out, b"IHDR", &ihdr);
        for (kind, data) in extra {
            chunk(&mut out, kind, data);
        }
        chunk(&mut out, b"IDAT", &z);
        chunk(&mut out, b"IEND", &[]);
        out
    }

    fn rgb_pattern(w: u32, h: u32) -> ImageBuffer<Rgb<u8>, Vec<u8>> {
        ImageBuffer::from_fn(w, h, |x, y| Rgb([(x * 40 + y) as u8, (y * 50 + 3) as u8, ((x * 7 + y * 11) % 200) as u8]))
    }

    #[test]
    fn png_rgb_is_exact_and_planar() {
        let d = dir("rgb");
        let img = rgb_pattern(5, 3);
        let p = save(&d, "a.png", &DynamicImage::ImageRgb8(img.clone()), ImageFormat::Png);
        let t = read_image("readImage", &p, &ImageOptions::default()).unwrap();
        assert_eq!(t.shape(), &[3, 3, 5]);
        let v = values(&t);
        for (x, y, px) in img.enumerate_pixels() {
            for c in 0..3 {
                assert_eq!(v[c * 15 + y as usize * 5 + x as usize], px[c] as f32 / 255.0);
            }
        }
    }

    #[test]
    fn rgba_drops_alpha_and_grey_replicates() {
        let d = dir("rgba");
        let rgba = ImageBuffer::from_fn(4, 2, |x, y| Rgba([x as u8 * 60, y as u8 * 90, 17, (x * 50) as u8]));
        let p = save(&d, "a.png", &DynamicImage::ImageRgba8(rgba.clone()), ImageFormat::Png);
        let v = values(&read_image("readImage", &p, &ImageOptions::default()).unwrap());
        for (x, y, px) in rgba.enumerate_pixels() {
            for c in 0..3 {
                // Alpha is dropped, not composited: a transparent pixel keeps its colour.
                assert_eq!(v[c * 8 + y as usize * 4 + x as usize], px[c] as f32 / 255.0);
            }
        }
        let grey = ImageBuffer::from_fn(3, 2, |x, y| Luma([(x * 80 + y * 7) as u8]));
        let p = save(&d, "g.png", &DynamicImage::ImageLuma8(grey.clone()), ImageFormat::Png);
        let t = read_image("readImage", &p, &ImageOptions::default()).unwrap();
        assert_eq!(t.shape(), &[3, 2, 3]);
        let v = values(&t);
        for c in 0..3 {
            for (i, px) in grey.pixels().enumerate() {
                assert_eq!(v[c * 6 + i], px[0] as f32 / 255.0);
            }
        }
        let one = ImageOptions { channels: 1, ..Default::default() };
        let t = read_image("readImage", &p, &one).unwrap();
        assert_eq!(t.shape(), &[1, 2, 3]);
        assert_eq!(values(&t), grey.pixels().map(|p| p[0] as f32 / 255.0).collect::<Vec<_>>());
    }

    #[test]
    fn rgb_to_grey_is_the_601_luma() {
        let d = dir("luma");
        let img = rgb_pattern(3, 3);
        let p = save(&d, "a.png", &DynamicImage::ImageRgb8(img.clone()), ImageFormat::Png);
        let t = read_image("readImage", &p, &ImageOptions { channels: 1, ..Default::default() }).unwrap();
        assert_eq!(t.shape(), &[1, 3, 3]);
        for (v, px) in values(&t).iter().zip(img.pixels()) {
            let want = (0.299 * px[0] as f64 + 0.587 * px[1] as f64 + 0.114 * px[2] as f64) / 255.0;
            assert!((*v as f64 - want).abs() < 1e-6, "{v} vs {want}");
        }
    }

    #[test]
    fn sixteen_bit_keeps_its_precision() {
        let d = dir("16");
        let img: ImageBuffer<Rgb<u16>, Vec<u16>> =
            ImageBuffer::from_fn(2, 2, |x, y| Rgb([x as u16 * 30000 + 1, y as u16 * 65535, 257 * 3 + 1]));
        let p = save(&d, "a.png", &DynamicImage::ImageRgb16(img.clone()), ImageFormat::Png);
        let v = values(&read_image("readImage", &p, &ImageOptions::default()).unwrap());
        for (i, px) in img.pixels().enumerate() {
            for c in 0..3 {
                assert_eq!(v[c * 4 + i], px[c] as f32 / 65535.0);
            }
        }
    }

    #[test]
    fn palette_pngs_are_expanded() {
        let d = dir("palette");
        let plte = vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30];
        // 4 pixels of 2 bits per row: indices 0, 1, 2, 3 and 3, 2, 1, 0.
        let rows = vec![vec![0b00_01_10_11], vec![0b11_10_01_00]];
        let png = handmade_png(4, 2, 2, 3, &[(b"PLTE", plte.clone())], &rows);
        let p = d.join("p.png");
        std::fs::write(&p, &png).unwrap();
        let v = values(&read_image("readImage", &p, &ImageOptions::default()).unwrap());
        let idx = [0usize, 1, 2, 3, 3, 2, 1, 0];
        for (i, &k) in idx.iter().enumerate() {
            for c in 0..3 {
                assert_eq!(v[c * 8 + i], plte[k * 3 + c] as f32 / 255.0, "pixel {i} channel {c}");
            }
        }
        // With a transparency chunk the palette expands to RGBA, whose alpha is dropped.
        let png = handmade_png(4, 2, 2, 3, &[(b"PLTE", plte.clone()), (b"tRNS", vec![0, 128])], &rows);
        std::fs::write(&p, &png).unwrap();
        let v2 = values(&read_image("readImage", &p, &ImageOptions::default()).unwrap());
        assert_eq!(v, v2);
    }

    #[test]
    fn jpeg_round_trip_is_close() {
        let d = dir("jpeg");
        // A smooth image: JPEG keeps it within a few levels.
        let img = ImageBuffer::from_fn(16, 16, |x, y| Rgb([(x * 12) as u8, (y * 12) as u8, 128]));
        let p = save(&d, "a.jpg", &DynamicImage::ImageRgb8(img.clone()), ImageFormat::Jpeg);
        let v = values(&read_image("readImage", &p, &ImageOptions::default()).unwrap());
        let mut worst = 0.0f32;
        for (i, px) in img.pixels().enumerate() {
            for c in 0..3 {
                worst = worst.max((v[c * 256 + i] - px[c] as f32 / 255.0).abs());
            }
        }
        assert!(worst < 12.0 / 255.0, "worst error {}", worst * 255.0);
    }

    fn planes(h: usize, w: usize, data: Vec<f32>) -> Planes {
        Planes { c: 1, h, w, data }
    }

    fn resample(p: &Planes, rh: usize, rw: usize, oh: usize, ow: usize, aa: bool) -> Vec<f32> {
        let mut out = vec![f32::NAN; oh * ow];
        resample_into("t", p, rh, rw, oh, ow, aa, &mut out).unwrap();
        out
    }

    #[test]
    fn bilinear_matches_hand_computed_values() {
        // Upsampling 2 → 4 along x (torch: src = (i + 0.5) / 2 - 0.5, clamped at the edges):
        // [a, 0.75a + 0.25b, 0.25a + 0.75b, b]; antialias changes nothing when enlarging.
        let p = planes(1, 2, vec![1.0, 5.0]);
        for aa in [false, true] {
            assert_eq!(resample(&p, 1, 4, 1, 4, aa), vec![1.0, 2.0, 4.0, 5.0]);
        }
        // Shrinking 4 → 2 without antialias: src = 0.5 and 2.5, the means of pixel pairs.
        let p = planes(1, 4, vec![0.0, 4.0, 8.0, 16.0]);
        assert_eq!(resample(&p, 1, 2, 1, 2, false), vec![2.0, 12.0]);
        // With antialias the triangle widens to ±2 pixels around centres 1 and 3:
        // weights (0.75, 0.75, 0.25) / 1.75 on pixels 0..3 and (0.25, 0.75, 0.75) / 1.75 on 1..4.
        let got = resample(&p, 1, 2, 1, 2, true);
        let want = [(0.75 * 0.0 + 0.75 * 4.0 + 0.25 * 8.0) / 1.75, (0.25 * 4.0 + 0.75 * 8.0 + 0.75 * 16.0) / 1.75];
        for (g, w) in got.iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-6, "{g} vs {w}");
        }
        // Both axes: a 2×2 image to 3×3 (scale 2/3): centres at 1/3, 1, 5/3 → src -1/6 (clamped
        // to 0), 0.5, 7/6 (right tap beyond the edge: clamped) → weights on [a, b]: (1, 0),
        // (0.5, 0.5), (0, 1).
        let p = planes(2, 2, vec![0.0, 6.0, 12.0, 18.0]);
        assert_eq!(resample(&p, 3, 3, 3, 3, false), vec![0.0, 3.0, 6.0, 6.0, 9.0, 12.0, 12.0, 15.0, 18.0]);
    }

    #[test]
    fn sizes_follow_torchvision() {
        let o = |resize, crop| ImageOptions { resize, crop, ..Default::default() };
        // Shorter side to n, the longer one int(n * long / short).
        assert_eq!(o(Some(Resize::Shorter(3)), None).sizes(7, 5), ((4, 3), (4, 3)));
        assert_eq!(o(Some(Resize::Shorter(10)), None).sizes(20, 30), ((10, 15), (10, 15)));
        assert_eq!(o(Some(Resize::Shorter(4)), Some((4, 4))).sizes(6, 9), ((4, 6), (4, 4)));
        assert_eq!(o(Some(Resize::Exact(2, 9)), None).sizes(6, 9), ((2, 9), (2, 9)));
        // int(round((size - crop) / 2)) rounds half to even; a larger crop pads (crop - size) // 2.
        assert_eq!(crop_offset(5, 2), 2);
        assert_eq!(crop_offset(7, 2), 2);
        assert_eq!(crop_offset(6, 3), 2);
        assert_eq!(crop_offset(4, 2), 1);
        assert_eq!(crop_offset(2, 5), -1);
    }

    #[test]
    fn center_crop_and_normalise() {
        let d = dir("crop");
        let img = ImageBuffer::from_fn(4, 4, |x, y| Luma([(y * 4 + x) as u8 * 10]));
        let p = save(&d, "a.png", &DynamicImage::ImageLuma8(img), ImageFormat::Png);
        let opts = ImageOptions {
            crop: Some((2, 2)),
            mean: vec![0.1, 0.2, 0.3],
            std: vec![0.5, 0.25, 2.0],
            ..Default::default()
        };
        let t = read_image("readImage", &p, &opts).unwrap();
        assert_eq!(t.shape(), &[3, 2, 2]);
        let v = values(&t);
        for (c, (m, s)) in [(0.1f32, 0.5f32), (0.2, 0.25), (0.3, 2.0)].into_iter().enumerate() {
            for (i, k) in [5u8, 6, 9, 10].into_iter().enumerate() {
                assert_eq!(v[c * 4 + i], ((k * 10) as f32 / 255.0 - m) / s);
            }
        }
        // A crop larger than the image pads with zeros (before the normalisation).
        let opts = ImageOptions { crop: Some((4, 6)), channels: 1, ..Default::default() };
        let v = values(&read_image("readImage", &p, &opts).unwrap());
        assert_eq!(&v[..6], &[0.0, 0.0, 10.0 / 255.0, 20.0 / 255.0, 30.0 / 255.0, 0.0]);
        assert_eq!(v[0], 0.0);
    }

    #[test]
    fn resize_then_crop_equals_cropping_the_full_resize() {
        let d = dir("resize-crop");
        let img = rgb_pattern(9, 6);
        let p = save(&d, "a.png", &DynamicImage::ImageRgb8(img), ImageFormat::Png);
        for aa in [false, true] {
            let full = ImageOptions { resize: Some(Resize::Shorter(4)), antialias: aa, ..Default::default() };
            let whole = read_image("readImage", &p, &full).unwrap();
            assert_eq!(whole.shape(), &[3, 4, 6]);
            let w = values(&whole);
            let cropped = ImageOptions { crop: Some((4, 4)), ..full.clone() };
            let c = values(&read_image("readImage", &p, &cropped).unwrap());
            // Offset round((6 - 4) / 2) = 1 along x.
            for ch in 0..3 {
                for y in 0..4 {
                    for x in 0..4 {
                        assert_eq!(c[ch * 16 + y * 4 + x], w[ch * 24 + y * 6 + x + 1]);
                    }
                }
            }
        }
    }

    #[test]
    fn batches_stack_in_order_and_refuse_mixed_sizes() {
        let d = dir("batch");
        let a = save(&d, "a.png", &DynamicImage::ImageRgb8(rgb_pattern(4, 3)), ImageFormat::Png);
        let grey = ImageBuffer::from_fn(4, 3, |x, y| Luma([(x + 10 * y) as u8]));
        let b = save(&d, "b.png", &DynamicImage::ImageLuma8(grey), ImageFormat::Png);
        let opts = ImageOptions::default();
        let batch = read_images("readImages", &[a.clone(), b.clone(), a.clone()], &opts).unwrap();
        assert_eq!(batch.shape(), &[3, 3, 3, 4]);
        let v = values(&batch);
        let va = values(&read_image("readImage", &a, &opts).unwrap());
        let vb = values(&read_image("readImage", &b, &opts).unwrap());
        assert_eq!(&v[..36], &va[..]);
        assert_eq!(&v[36..72], &vb[..]);
        assert_eq!(&v[72..], &va[..]);
        let big = save(&d, "big.png", &DynamicImage::ImageRgb8(rgb_pattern(5, 3)), ImageFormat::Png);
        let e = read_images("readImages", &[a.clone(), big.clone()], &opts).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Image);
        let msg = e.to_string();
        assert!(msg.contains("big.png") && msg.contains("3×3×5") && msg.contains("3×3×4"), "{msg}");
        // With a resize and a crop, any sizes stack.
        let fixed = ImageOptions { resize: Some(Resize::Shorter(2)), crop: Some((2, 2)), ..Default::default() };
        assert_eq!(read_images("readImages", &[a, big], &fixed).unwrap().shape(), &[2, 3, 2, 2]);
        // The first failing file in order is reported.
        let missing = d.join("missing.png");
        let e = read_images("readImages", &[b.clone(), missing.clone(), d.join("other.png")], &opts).unwrap_err();
        assert!(e.to_string().contains("missing.png"), "{e}");
        assert!(read_images("readImages", &[], &opts).unwrap_err().to_string().contains("at least one"));
    }

    fn read_err(p: &Path, opts: &ImageOptions) -> String {
        let e = match read_image("readImage", p, opts) {
            Ok(_) => panic!("{} was read", p.display()),
            Err(e) => e,
        };
        assert_eq!(e.kind(), crate::ErrorKind::Image, "{e}");
        let msg = e.to_string();
        assert!(msg.starts_with("readImage: cannot read '"), "{msg}");
        assert!(msg.contains(&p.display().to_string()), "{msg}");
        msg
    }

    #[test]
    fn bad_files_are_refused_naming_the_file_and_the_reason() {
        let d = dir("bad");
        let opts = ImageOptions::default();
        assert!(read_err(&d.join("nope.png"), &opts).ends_with("no such file"));
        assert!(read_err(&d, &opts).ends_with("it is a folder"));
        let empty = d.join("empty.png");
        std::fs::write(&empty, b"").unwrap();
        assert!(read_err(&empty, &opts).ends_with("the file is empty"));
        let text = d.join("notes.png");
        std::fs::write(&text, b"these are not the pixels you are looking for").unwrap();
        assert!(read_err(&text, &opts).contains("not a PNG or JPEG"));
        let gif = d.join("a.gif");
        std::fs::write(&gif, b"GIF89a\x01\x00\x01\x00\x00\x00\x00;").unwrap();
        assert!(read_err(&gif, &opts).contains("unsupported format Gif"));

        let png = d.join("a.png");
        save(&d, "a.png", &DynamicImage::ImageRgb8(rgb_pattern(32, 32)), ImageFormat::Png);
        let bytes = std::fs::read(&png).unwrap();
        for cut in [20, 40, bytes.len() / 2, bytes.len() - 13] {
            let t = d.join(format!("cut{cut}.png"));
            std::fs::write(&t, &bytes[..cut]).unwrap();
            let msg = read_err(&t, &opts);
            assert!(msg.contains("PNG"), "{msg}");
        }
        let mut flipped = bytes.clone();
        let n = flipped.len();
        flipped[n / 2] ^= 0x55;
        let bad = d.join("flipped.png");
        std::fs::write(&bad, &flipped).unwrap();
        assert!(read_err(&bad, &opts).contains("corrupt"));

        let jpg = save(&d, "a.jpg", &DynamicImage::ImageRgb8(rgb_pattern(32, 32)), ImageFormat::Jpeg);
        let bytes = std::fs::read(&jpg).unwrap();
        for cut in [4, 100, bytes.len() / 2, bytes.len() - 2] {
            let t = d.join(format!("cut{cut}.jpg"));
            std::fs::write(&t, &bytes[..cut]).unwrap();
            let msg = read_err(&t, &opts);
            assert!(msg.contains("truncated JPEG data"), "{msg}");
        }
        // Bytes after the end marker are allowed; an end marker inside a metadata segment (an
        // EXIF thumbnail) does not make a truncated file complete.
        let mut trailing = bytes.clone();
        trailing.extend_from_slice(b"trailing bytes");
        let t = d.join("trailing.jpg");
        std::fs::write(&t, &trailing).unwrap();
        assert!(read_image("readImage", &t, &opts).is_ok());
        let thumb = [b"\xFF\xE1\x00\x0CExif\x00\x00".as_slice(), b"\xFF\xD8\xFF\xD9"].concat();
        let with_thumb = [&bytes[..2], &thumb[..], &bytes[2..]].concat();
        let t = d.join("thumb.jpg");
        std::fs::write(&t, &with_thumb).unwrap();
        assert!(read_image("readImage", &t, &opts).is_ok());
        std::fs::write(&t, &with_thumb[..with_thumb.len() / 2]).unwrap();
        assert!(read_err(&t, &opts).contains("truncated JPEG data"));
    }

    #[test]
    fn limits_are_checked_before_decoding() {
        let d = dir("limits");
        let p = save(&d, "a.png", &DynamicImage::ImageRgb8(rgb_pattern(20, 10)), ImageFormat::Png);
        let size = std::fs::metadata(&p).unwrap().len();
        let small = ImageOptions { max_file_bytes: size - 1, ..Default::default() };
        assert!(read_err(&p, &small).contains("more than the limit") && read_err(&p, &small).contains("maxFileBytes"));
        let few = ImageOptions { max_pixels: 199, ..Default::default() };
        assert!(read_err(&p, &few).contains("20×10 = 200 pixels"));
        assert!(read_image("readImage", &p, &ImageOptions { max_pixels: 200, ..Default::default() }).is_ok());
        // A bomb: a header declaring 100000 × 100000 pixels over a few bytes of data.
        let bomb = handmade_png(100_000, 100_000, 8, 0, &[], &[vec![0; 4]]);
        let b = d.join("bomb.png");
        std::fs::write(&b, &bomb).unwrap();
        assert!(read_err(&b, &ImageOptions::default()).contains("10000000000 pixels"));
        // A long, thin image resized on its shorter side would be huge: refused too.
        let thin = save(&d, "thin.png", &DynamicImage::ImageLuma8(ImageBuffer::new(400, 1)), ImageFormat::Png);
        let o = ImageOptions { resize: Some(Resize::Shorter(300)), max_pixels: 100_000, ..Default::default() };
        assert!(read_err(&thin, &o).contains("output image would be 120000×300"));
    }

    #[test]
    fn options_are_validated() {
        let bad = [
            ImageOptions { channels: 2, ..Default::default() },
            ImageOptions { resize: Some(Resize::Shorter(0)), ..Default::default() },
            ImageOptions { crop: Some((0, 3)), ..Default::default() },
            ImageOptions { mean: vec![0.0, 0.0], ..Default::default() },
            ImageOptions { std: vec![1.0, 0.0, 1.0], ..Default::default() },
            ImageOptions { mean: vec![f32::NAN], ..Default::default() },
        ];
        for o in bad {
            assert_eq!(o.validate("readImage").unwrap_err().kind(), crate::ErrorKind::Value, "{o:?}");
        }
    }

    #[test]
    fn write_png_round_trips() {
        let d = dir("write");
        let t = Tensor::from_f32(vec![0.0, 0.5, 1.0, 2.0, -1.0, f32::NAN, 0.2, 0.4, 0.6, 0.8, 1.0, 0.0], &[3, 2, 2])
            .unwrap();
        let p = d.join("out.png");
        write_png("writePng", &p, &t).unwrap();
        let v = values(&read_image("readImage", &p, &ImageOptions::default()).unwrap());
        let want: Vec<f32> =
            [0, 128, 255, 255, 0, 0, 51, 102, 153, 204, 255, 0].iter().map(|&b| b as f32 / 255.0).collect();
        assert_eq!(v, want);
        let g = Tensor::from_f64(vec![0.25, 0.75], &[1, 1, 2]).unwrap();
        write_png("writePng", &p, &g).unwrap();
        let img = ::image::open(&p).unwrap();
        assert_eq!(img.color(), ::image::ColorType::L8);
        assert_eq!(img.as_luma8().unwrap().as_raw(), &vec![64, 191]);
        let e = write_png("writePng", &p, &Tensor::from_f32(vec![0.0; 8], &[2, 2, 2]).unwrap()).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Shape);
        let e = write_png("writePng", &d.join("no/such/dir/x.png"), &g).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Image);
        assert!(e.to_string().starts_with("writePng: cannot write '") && e.to_string().contains("x.png"), "{e}");
    }
}
