// A fixed computation through a given addon binary, for comparing one build across CPUs and
// emulators (scripts/emulated-platform-check.sh): an LSTM layer forward and backward, a
// matrix product large enough for the GEMM's parallel SIMD path, and the JPEG/PNG decoders and
// resize (whose dependencies pick SIMD code at run time too), with every output and gradient
// printed as one JSON line.
//   node scripts/platform-compute.mjs <addon.node>            → JSON on stdout
//   node scripts/platform-compute.mjs --compare <ref> <got> [tolerance]
// The compare mode checks |got − ref| ≤ tolerance · max(1, |ref|) element-wise (default 1e-5)
// and exits 1 on any difference, naming the worst element.
// Plain JavaScript on the raw binding (no TypeScript loader): it must run in a bare Node under
// an emulator, where loading a TypeScript toolchain would take most of the time.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

/** Deterministic inputs that do not depend on the addon's own random generator. */
function values(n, seed, scale) {
  const out = new Float32Array(n)
  for (let i = 0; i < n; i++) out[i] = Math.sin(i * 0.731 + seed * 1.37) * scale
  return out
}

const IMAGES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '__test__', 'fixtures', 'images')

async function compute(binary) {
  const native = createRequire(import.meta.url)(path.resolve(binary))
  const leaf = (shape, seed, scale) => {
    const t = native.fromFloat32(values(shape.reduce((a, b) => a * b, 1), seed, scale), shape)
    t.requiresGrad = true
    return t
  }
  const fixed = (shape, seed) => native.fromFloat32(values(shape.reduce((a, b) => a * b, 1), seed, 1), shape)

  // LSTM, H = 20: the packed panels are 16 wide, so one full and one padded panel per gate.
  const [T, B, I, H] = [6, 3, 5, 20]
  const x = leaf([T, B, I], 1, 1)
  const h0 = leaf([B, H], 2, 0.5)
  const c0 = leaf([B, H], 3, 0.5)
  const wIh = leaf([4 * H, I], 4, 0.4)
  const wHh = leaf([4 * H, H], 5, 0.3)
  const bIh = leaf([4 * H], 6, 0.1)
  const bHh = leaf([4 * H], 7, 0.1)
  const r = native.recurrentLayer('lstm', x, h0, c0, wIh, wHh, bIh, bHh, null, false)
  const lossLstm = native.add(
    native.add(native.sumAll(native.mul(r.y, fixed([T, B, H], 8))), native.sumAll(native.mul(r.hT, fixed([B, H], 9)))),
    native.sumAll(native.mul(r.cT, fixed([B, H], 10))),
  )
  lossLstm.backward()

  // 128·96·96 multiply-adds: above the size where the GEMM goes parallel (2^20).
  const a = leaf([128, 96], 11, 0.2)
  const b = leaf([96, 96], 12, 0.2)
  const p = native.tanh(native.matmul(a, b))
  const lossMm = native.sumAll(native.mul(p, fixed([128, 96], 13)))
  lossMm.backward()

  const photos = await native.readImages(
    ['baseline.jpg', 'progressive.jpg', 'resize-source.png'].map((f) => path.join(IMAGES, f)),
    { resizeHeight: 7, resizeWidth: 9, channels: 3, antialias: true },
    false,
  )

  const arr = (t) => Array.from(t.dataSync())
  return {
    images: arr(photos),
    lstm_y: arr(r.y),
    lstm_hT: arr(r.hT),
    lstm_cT: arr(r.cT),
    lstm_loss: arr(lossLstm),
    lstm_dx: arr(x.grad()),
    lstm_dh0: arr(h0.grad()),
    lstm_dc0: arr(c0.grad()),
    lstm_dWih: arr(wIh.grad()),
    lstm_dWhh: arr(wHh.grad()),
    lstm_dbIh: arr(bIh.grad()),
    lstm_dbHh: arr(bHh.grad()),
    mm_y: arr(p),
    mm_da: arr(a.grad()),
    mm_db: arr(b.grad()),
  }
}

function compare(refFile, gotFile, tol) {
  const ref = JSON.parse(readFileSync(refFile, 'utf8'))
  const got = JSON.parse(readFileSync(gotFile, 'utf8'))
  let worst = { excess: -Infinity, where: '' }
  let bad = 0
  let count = 0
  for (const name of Object.keys(ref)) {
    const rv = ref[name]
    const gv = got[name]
    if (!Array.isArray(gv) || gv.length !== rv.length) {
      console.log(`${name}: length ${gv?.length} vs ${rv.length}`)
      return 1
    }
    for (let i = 0; i < rv.length; i++) {
      count++
      const err = Math.abs(gv[i] - rv[i])
      const allowed = tol * Math.max(1, Math.abs(rv[i]))
      if (!(err <= allowed)) bad++
      const excess = allowed > 0 ? err / allowed : err > 0 ? Infinity : 0
      if (excess > worst.excess || Number.isNaN(err)) {
        worst = { excess, where: `${name}[${i}]: ${gv[i]} vs ${rv[i]} (|diff| ${err.toExponential(2)})` }
      }
    }
  }
  console.log(`${count} values, ${bad} beyond ${tol}·max(1,|ref|); largest relative to tolerance: ${worst.where}`)
  return bad === 0 ? 0 : 1
}

const args = process.argv.slice(2)
if (args[0] === '--compare' && args.length >= 3) {
  process.exit(compare(args[1], args[2], args[3] ? Number(args[3]) : 1e-5))
} else if (args.length === 1) {
  console.log(JSON.stringify(await compute(args[0])))
} else {
  console.error('usage: platform-compute.mjs <addon.node> | --compare <ref.json> <got.json> [tolerance]')
  process.exit(2)
}
