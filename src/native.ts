/**
 * Loads the native addon through the loader that `napi build` generates in `native/`
 * (`native/index.cjs` and its types `native/index.d.cts` are generated files: never edit them,
 * `npm run build:native` rewrites them).
 *
 * Internal module: the public API is in `tensor.ts` and `ops/`, which wrap every native call
 * so that errors come out as the classes of `errors.ts`.
 */

import { createRequire } from 'node:module'
import path from 'node:path'
import type * as NativeModule from '../native/index.cjs'

export type { NativeTensor, MemoryInfo, RecurrentLayerOutput } from '../native/index.cjs'

const require = createRequire(import.meta.url)

function load(): typeof NativeModule {
  // From the sources (src/native.ts) the loader is one level up; from the compiled package
  // (dist/src/native.js) it is two levels up.
  // RECURRENT_NATIVE_DIR: a test build of the addon elsewhere (e.g. `npm run build:native:emu`,
  // the CUDA kernel emulator's build, in .tmp/native-emu), loaded instead of native/.
  const dir = process.env.RECURRENT_NATIVE_DIR
  if (dir) return require(path.resolve(dir, 'index.cjs')) as typeof NativeModule
  const candidates = ['../native/index.cjs', '../../native/index.cjs']
  const errors: unknown[] = []
  for (const c of candidates) {
    try {
      return require(c) as typeof NativeModule
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' && String((e as Error).message).includes(c)) {
        errors.push(e)
        continue
      }
      throw e
    }
  }
  throw new Error(
    'recurrent: the native addon is not built (native/index.cjs is missing); run `npm run build:native`',
    { cause: errors },
  )
}

/** The raw native module. Its errors are plain `Error`s with `code` and `op`: use `errors.wrap`. */
export const native: typeof NativeModule = load()
