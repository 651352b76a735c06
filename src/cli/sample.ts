/**
 * `recurrent sample`: generates text from a `train-char` checkpoint (the model config and the
 * vocabulary are read from the checkpoint's metadata).
 */

import { helpText, parseArgs, UsageError, type FlagSpec } from './args.js'
import { generate } from '../seq2seq/generate.js'
import { loadCharModel, resolveCheckpointPath } from './common.js'

export const SAMPLE_FLAGS: readonly FlagSpec[] = [
  { name: 'checkpoint', type: 'string', metavar: 'PATH', default: './checkpoints/char-lstm', help: `a train-char --out folder (its checkpoint.safetensors) or a checkpoint file` },
  { name: 'prime', type: 'string', metavar: 'TEXT', default: '', help: 'text to start from; it is printed, then continued (default: start of a line)' },
  { name: 'length', type: 'int', min: 0, default: 400, help: 'characters to generate after the prime' },
  { name: 'temperature', type: 'number', min: 0, default: 0.8, help: 'sampling temperature: lower is more conservative, 0 always takes the most likely character' },
  { name: 'seed', type: 'int', min: 0, metavar: 'N', help: 'seed of the sampling generator (default: random)' },
]

export const SAMPLE_HELP = helpText(
  'Usage: recurrent sample [--checkpoint DIR|FILE] [--prime TEXT] [--temperature X] [--length N] [--seed N]',
  'Generates text with a character-level model trained by `recurrent train-char`. Prints the prime\nfollowed by the generated characters.',
  SAMPLE_FLAGS,
)

/** Runs `recurrent sample`; returns the exit status. */
export async function sampleCommand(argv: readonly string[], out: { write(s: string): unknown }): Promise<number> {
  const args = parseArgs('sample', argv, SAMPLE_FLAGS)
  if (args.values.help) {
    out.write(SAMPLE_HELP)
    return 0
  }
  const v = args.values
  const prime = String(v.prime ?? '')
  if (prime.includes('\0')) throw new UsageError('--prime may not contain NUL characters')
  const file = resolveCheckpointPath(String(v.checkpoint))
  const { model, vocab } = await loadCharModel(file)
  const seed = v.seed !== undefined ? Number(v.seed) : Math.floor(Math.random() * 2 ** 31)
  out.write(prime)
  await generate(model, vocab, {
    prime,
    length: Number(v.length),
    temperature: Number(v.temperature),
    seed,
    onText: (s) => out.write(s),
  })
  out.write('\n')
  return 0
}
