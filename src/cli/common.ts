/**
 * Shared pieces of the CLI commands: file access with one-line errors, the checkpoint layout of
 * `train-char` (model config + vocabulary in the metadata) and number formatting. Sampling is
 * the library's `generate` (src/seq2seq/generate.ts).
 */

import { existsSync, lstatSync, mkdirSync, readdirSync, realpathSync, statSync, unlinkSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { RecurrentError } from '../errors.js'
import { packageRoot } from '../platform.js'
import { CharVocab, type VocabJSON } from '../data/vocab.js'
import { RecurrentLM, type LMCell } from '../train/lm.js'
import { loadCheckpoint, type Checkpoint } from '../train/checkpoint.js'
import { CliError } from './args.js'

/** The checkpoint file inside an `--out` folder. */
export const CHECKPOINT_FILE = 'checkpoint.safetensors'
/** The `kind` of the config that `train-char` stores in its checkpoints. */
export const TRAIN_CHAR_KIND = 'recurrent.train-char'

/** The model part of a `train-char` checkpoint config (RecurrentLM's options). */
export interface CharModelConfig {
  vocabSize: number
  hiddenSize: number
  embeddingDim: number
  numLayers: number
  cell: LMCell
  dropout: number
}

/** The bundled corpus (KJV New Testament, public domain; see NOTICE). */
export function bundledCorpus(): string {
  return join(packageRoot(), 'data', 'kjv-new-testament.txt')
}

/** A short reason for a file-system error: "no such file", "permission denied", ... */
export function fsReason(e: unknown): string {
  const code = (e as { code?: string } | null)?.code
  switch (code) {
    case 'ENOENT':
      return 'no such file'
    case 'EACCES':
    case 'EPERM':
      return 'permission denied'
    case 'EISDIR':
      return 'is a directory'
    case 'ENOTDIR':
      return 'a part of the path is not a directory'
    case 'ENOSPC':
      return 'no space left on the device'
    case 'EROFS':
      return 'read-only file system'
    case 'EEXIST':
      return 'a file of that name is in the way'
    default:
      return oneLine(e instanceof Error ? e.message : String(e))
  }
}

/** Reads a UTF-8 text file; failures become `cannot read <what> '<path>': <reason>`. */
export async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch (e) {
    throw new CliError(`cannot read ${what} '${path}': ${fsReason(e)}`, { cause: e })
  }
}

/** The first line of a message, with runs of whitespace collapsed. */
export function oneLine(s: string): string {
  const first = s.split(/\r?\n/).find((l) => l.trim() !== '') ?? s
  return first.replace(/\s+/g, ' ').trim()
}

/** `--checkpoint` may name a folder (its checkpoint.safetensors) or a file. */
export function resolveCheckpointPath(p: string): string {
  let st: ReturnType<typeof statSync>
  try {
    st = statSync(p)
  } catch (e) {
    throw new CliError(`cannot read --checkpoint '${p}': ${fsReason(e)}`, { cause: e })
  }
  if (!st.isDirectory()) return p
  const f = join(p, CHECKPOINT_FILE)
  if (!existsSync(f)) throw new CliError(`no checkpoint in '${p}' (expected ${join(p, CHECKPOINT_FILE)}; train one with 'recurrent train-char --out ${p}')`)
  return f
}

/** loadCheckpoint with a one-line error that names the file. */
export async function readCheckpoint(file: string): Promise<Checkpoint> {
  try {
    return await loadCheckpoint(file)
  } catch (e) {
    if (e instanceof RecurrentError) {
      // The library's message already names the file; drop the op prefix.
      let msg = oneLine(e.op && e.message.startsWith(`${e.op}: `) ? e.message.slice(e.op.length + 2) : e.message)
      if (msg.startsWith(`'${file}'`)) msg = msg.slice(file.length + 2).replace(/^[\s:]+/, '')
      if (/^(is|has|holds|was) /.test(msg)) throw new CliError(`checkpoint '${file}' ${msg}`, { cause: e })
      throw new CliError(`cannot load checkpoint '${file}': ${msg || 'unreadable'}`, { cause: e })
    }
    throw new CliError(`cannot load checkpoint '${file}': ${fsReason(e)}`, { cause: e })
  }
}

/** The model config and vocabulary of a `train-char` checkpoint (checked). */
export function charCheckpointParts(ck: Checkpoint): { model: CharModelConfig; vocab: CharVocab; config: Record<string, unknown> } {
  const bad = (why: string) => new CliError(`'${ck.path}' is not a train-char checkpoint: ${why}`)
  const config = ck.config as { kind?: string; model?: Partial<CharModelConfig> } | null
  if (!config || typeof config !== 'object' || config.kind !== TRAIN_CHAR_KIND || !config.model) throw bad('its config has no char model (was it written by recurrent train-char?)')
  const vj = (ck.metadata as { vocab?: VocabJSON } | null)?.vocab
  if (vj?.type !== 'char') throw bad('its metadata has no character vocabulary')
  let vocab: CharVocab
  try {
    vocab = CharVocab.fromJSON(vj)
  } catch (e) {
    throw bad(`its vocabulary is invalid (${oneLine((e as Error).message)})`)
  }
  const m = config.model
  const ints = ['vocabSize', 'hiddenSize', 'embeddingDim', 'numLayers'] as const
  for (const k of ints) if (!Number.isInteger(m[k]) || (m[k] as number) < 1) throw bad(`model.${k} is ${String(m[k])}`)
  if (m.cell !== 'lstm' && m.cell !== 'gru' && m.cell !== 'rnn') throw bad(`model.cell is ${String(m.cell)}`)
  if (m.vocabSize !== vocab.size) throw bad(`the model has ${m.vocabSize} symbols but the vocabulary ${vocab.size}`)
  return { model: { ...(m as CharModelConfig), dropout: typeof m.dropout === 'number' ? m.dropout : 0 }, vocab, config: config as Record<string, unknown> }
}

/** Builds the RecurrentLM of a config. */
export function buildModel(m: CharModelConfig, seed?: number): RecurrentLM {
  const o = { vocabSize: m.vocabSize, hiddenSize: m.hiddenSize, embeddingDim: m.embeddingDim, numLayers: m.numLayers, cell: m.cell, dropout: m.dropout }
  return new RecurrentLM(seed === undefined ? o : { ...o, seed })
}

/** Loads a model and its vocabulary from a checkpoint file, with one-line errors. */
export async function loadCharModel(file: string): Promise<{ model: RecurrentLM; vocab: CharVocab; ck: Checkpoint }> {
  const ck = await readCheckpoint(file)
  const { model: cfg, vocab } = charCheckpointParts(ck)
  const model = buildModel(cfg)
  try {
    model.loadStateDict(ck.model, { strict: true })
  } catch (e) {
    throw new CliError(`cannot load checkpoint '${file}': its weights do not fit its config (${oneLine((e as Error).message)})`, { cause: e })
  }
  return { model, vocab, ck }
}

/** 1234567 → "1,234,567". */
export const fmtInt = (n: number) => Math.round(n).toLocaleString('en-US')

/** 24123 → "24.1k". */
export function fmtSI(n: number): string {
  if (!Number.isFinite(n)) return '-'
  const a = Math.abs(n)
  if (a >= 1e9) return `${(n / 1e9).toFixed(2)}G`
  if (a >= 1e6) return `${(n / 1e6).toFixed(2)}M`
  if (a >= 1e3) return `${(n / 1e3).toFixed(1)}k`
  return n.toFixed(0)
}

/** Seconds → "1:05" or "1:02:03". */
export function fmtDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return '--:--'
  const s = Math.round(sec)
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const r = s % 60
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(r).padStart(2, '0')}` : `${m}:${String(r).padStart(2, '0')}`
}


/**
 * Creates the output folder `dir` (and its missing parents) for the flag `flag`, one level at a
 * time. Node's recursive `mkdir` spins without end under `/proc` and reports "no such file"
 * for a parent it may not write; here each level is its own `mkdir`, so the error is the real
 * one (permission denied, read-only file system…), and the walk is bounded in depth and time.
 * Folders on the kernel's special file systems (`/proc`, `/sys`, `/dev` other than `/dev/shm`)
 * are refused: they cannot hold files.
 */
export function makeOutDir(dir: string, flag = '--out'): void {
  const fail = (why: string, cause?: unknown): never => {
    throw new CliError(`cannot create ${flag} '${dir}': ${why}`, cause === undefined ? undefined : { cause })
  }
  const deadline = Date.now() + 10_000
  const missing: string[] = []
  let cur = resolve(dir)
  for (let depth = 0; ; depth++) {
    if (depth > 256 || Date.now() > deadline) fail('the path is too deep, or its file system does not answer')
    try {
      if (!statSync(cur).isDirectory()) fail(`'${cur}' is a file, not a folder`)
      break
    } catch (e) {
      if (e instanceof CliError) throw e
      if ((e as { code?: string }).code !== 'ENOENT') fail(fsReason(e), e)
      missing.unshift(cur)
      const up = dirname(cur)
      if (up === cur) break
      cur = up
    }
  }
  let real = cur
  try {
    real = realpathSync(cur)
  } catch {}
  if (/^\/(proc|sys)(\/|$)/.test(real) || (/^\/dev(\/|$)/.test(real) && !/^\/dev\/shm(\/|$)/.test(real))) {
    fail(`'${real}' is on a special file system of the kernel, which cannot hold files; choose a folder on a disk`)
  }
  for (const m of missing) {
    try {
      mkdirSync(m)
    } catch (e) {
      if ((e as { code?: string }).code !== 'EEXIST') fail(`${fsReason(e)} (creating '${m}')`, e)
    }
  }
}

/**
 * Removes temporary files that an earlier run killed mid-write left in `dir`: only the names
 * this program makes (`.checkpoint.safetensors.tmp-<pid>-<n>`, `loss.svg.tmp-<pid>`), only
 * regular files, and only those of processes that are gone (a run still writing keeps its own).
 * Returns the names removed.
 */
export function removeStaleTemps(dir: string): string[] {
  const removed: string[] = []
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch {
    return removed
  }
  const pattern = /^(?:\.checkpoint\.safetensors\.tmp-(\d+)-\d+|loss\.svg\.tmp-(\d+))$/
  for (const name of names) {
    const m = pattern.exec(name)
    if (!m) continue
    const pid = Number(m[1] ?? m[2])
    if (pid !== process.pid && processAlive(pid)) continue
    const path = join(dir, name)
    try {
      if (!lstatSync(path).isFile()) continue
      unlinkSync(path)
      removed.push(name)
    } catch {}
  }
  return removed
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as { code?: string }).code === 'EPERM'
  }
}
