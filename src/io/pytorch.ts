/**
 * PyTorch weight exchange through safetensors files with PyTorch's state-dict names.
 *
 * `recurrent` modules name their parameters exactly as PyTorch does (`weight_ih_l0`,
 * `bias_hh_l1_reverse`, `0.weight`, ...) and use the same layouts, so a state dict saved in
 * Python with
 *
 * ```py
 * from safetensors.torch import save_file
 * save_file(model.state_dict(), "model.safetensors")
 * ```
 *
 * loads into the matching `recurrent` module unchanged, and the other way round with
 * `model.load_state_dict(safetensors.torch.load_file("model.safetensors"))`.
 */

import { RecurrentError } from '../errors.js'
import { Module, type LoadStateDictOptions, type LoadStateDictResult } from '../nn/module.js'
import { loadSafetensors, saveSafetensors } from './safetensors.js'
import { boolArg, checkOptions, optionKeys, typeError } from '../validate.js'

const LOAD_OPTIONS = optionKeys<LoadStateDictOptions>({ strict: true })

/**
 * Loads a safetensors file holding a PyTorch state dict into `module` (its
 * {@link Module.loadStateDict}, strict by default: every parameter must be present with its
 * shape and dtype, and nothing else). A failed load leaves the module unchanged.
 *
 * @throws CheckpointError (rejected) for a missing or malformed file; ShapeError or ValueError
 *   (prefixed with the file name) for mismatched names, shapes or dtypes.
 */
export async function loadTorchStateDict(module: Module, path: string, options: LoadStateDictOptions = {}): Promise<LoadStateDictResult> {
  const op = 'loadTorchStateDict'
  if (!(module instanceof Module)) throw typeError(op, "argument 'module'", 'a Module', module)
  const o = checkOptions(op, options, LOAD_OPTIONS)
  if (o.strict !== undefined) boolArg(op, 'strict', o.strict)
  const { tensors } = await loadSafetensors(path)
  try {
    return module.loadStateDict(tensors, options)
  } catch (e) {
    if (e instanceof RecurrentError) {
      const Cls = e.constructor as new (op: string, detail: string, options?: { cause?: unknown }) => RecurrentError
      throw new Cls(op, `'${path}': ${e.message}`, { cause: e })
    }
    throw e
  }
}

/**
 * Saves `module`'s state dict (PyTorch names and layouts) to a safetensors file that
 * `safetensors.torch.load_file` reads, written atomically. `metadata` goes to the file's
 * `__metadata__` map (`{ format: 'pt' }` is added, as `safetensors.torch` writes it).
 */
export async function saveTorchStateDict(module: Module, path: string, metadata: Record<string, string> = {}): Promise<void> {
  if (!(module instanceof Module)) throw typeError('saveTorchStateDict', "argument 'module'", 'a Module', module)
  await saveSafetensors(path, module.stateDict(), { format: 'pt', ...metadata })
}
