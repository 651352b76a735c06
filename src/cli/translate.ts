/**
 * `recurrent translate`: reads one source per line on stdin and writes the model's output for
 * it, one line each, on stdout, with a `train-seq2seq` checkpoint (greedy, or beam search).
 */

import { createInterface } from 'node:readline'
import type { Readable } from 'node:stream'
import { helpText, parseArgs, UsageError, type FlagSpec } from './args.js'
import { readCheckpoint, resolveCheckpointPath } from './common.js'
import { buildSeq2Seq, seq2seqCheckpointParts, translateIds } from './train-seq2seq.js'

export const TRANSLATE_FLAGS: readonly FlagSpec[] = [
  { name: 'checkpoint', type: 'string', metavar: 'PATH', default: './checkpoints/seq2seq', help: 'a train-seq2seq --out folder (its checkpoint.safetensors) or a checkpoint file' },
  { name: 'beam', type: 'int', min: 1, default: 1, help: 'beam width (1: greedy decoding)' },
  { name: 'n-best', type: 'int', min: 1, default: 1, help: 'outputs per source, best first, separated by tabs (at most --beam)' },
  { name: 'length-penalty', type: 'number', min: 0, default: 0, help: "beam search: α of GNMT's length penalty, ranking by logProb / ((5 + length) / 6)^α (0: none; larger favours longer outputs)" },
  { name: 'max-length', type: 'int', min: 1, metavar: 'N', help: 'longest output in tokens (default: twice the longest training target, plus 2)' },
  { name: 'batch', type: 'int', min: 1, default: 64, help: 'sources decoded together (lines are read in batches of this many; 1 on a terminal)' },
  { name: 'scores', type: 'bool', help: "append each output's score (its log-probability, divided by the length penalty) after a tab" },
]

export const TRANSLATE_HELP = helpText(
  'Usage: recurrent translate --checkpoint DIR [--beam K] [--n-best N] < sources.txt',
  'Reads one source per line on stdin and writes one output per line on stdout, with a model trained\nby `recurrent train-seq2seq`. An empty line gives an empty line.',
  TRANSLATE_FLAGS,
)

/** Runs `recurrent translate`; returns the exit status. */
export async function translateCommand(argv: readonly string[], io: { input: Readable; inputIsTTY: boolean; out: { write(s: string): unknown } }): Promise<number> {
  const args = parseArgs('translate', argv, TRANSLATE_FLAGS)
  if (args.values.help) {
    io.out.write(TRANSLATE_HELP)
    return 0
  }
  const v = args.values
  const beamWidth = Number(v.beam)
  const nBest = Number(v['n-best'])
  if (nBest > beamWidth) throw new UsageError(`--n-best ${nBest} needs a beam at least that wide (--beam ${beamWidth})`)
  const file = resolveCheckpointPath(String(v.checkpoint))
  const ck = await readCheckpoint(file)
  const { config, source, target } = seq2seqCheckpointParts(ck)
  const model = buildSeq2Seq(config.model)
  model.loadStateDict(ck.model)
  for (const t of Object.values(ck.tensors)) t.dispose()
  model.eval()
  const maxLength = v['max-length'] !== undefined ? Number(v['max-length']) : 2 * config.train.maxTargetTokens + 2
  const lengthPenalty = Number(v['length-penalty'])
  const batchSize = io.inputIsTTY ? 1 : Number(v.batch)
  const withScores = v.scores === true

  const flush = async (lines: string[]) => {
    const ids = lines.map((l) => source.encode(l))
    const live = ids.map((s, i) => [s, i] as const).filter(([s]) => s.length > 0)
    const outs: string[] = lines.map(() => '')
    if (live.length > 0) {
      const res = await translateIds(
        model,
        live.map(([s]) => s),
        { beamWidth, nBest, maxLength, lengthPenalty },
      )
      live.forEach(([, i], k) => {
        outs[i] = res[k]!.slice(0, nBest)
          .map((h) => (withScores ? `${target.decode(h.tokens)}\t${h.score.toFixed(4)}` : target.decode(h.tokens)))
          .join('\t')
      })
    }
    io.out.write(outs.map((s) => `${s}\n`).join(''))
  }
  const rl = createInterface({ input: io.input, crlfDelay: Infinity })
  let pending: string[] = []
  for await (const line of rl) {
    pending.push(line)
    if (pending.length >= batchSize) {
      await flush(pending)
      pending = []
    }
  }
  if (pending.length > 0) await flush(pending)
  return 0
}
