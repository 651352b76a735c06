/**
 * onnxruntime-node, the independent reference of the ONNX specs, from oracles/ (installed by
 * `scripts/ensure-oracles.mjs`, which `npm test` and `npm run lint` run first).
 */

import { createRequire } from 'node:module'
import type * as Ort from '../../oracles/node_modules/onnxruntime-node/dist/index.js'

const require = createRequire(import.meta.url)

function load(): typeof Ort {
  try {
    return require('../../oracles/node_modules/onnxruntime-node') as typeof Ort
  } catch (e) {
    throw new Error('onnxruntime-node is not installed in oracles/: run `node scripts/ensure-oracles.mjs`', { cause: e })
  }
}

const ort: typeof Ort = load()
export default ort

/** onnxruntime's tensor type (`ort.Tensor` as a type). */
export type OrtTensor = Ort.Tensor
