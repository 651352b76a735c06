/**
 * Scores of generated sequences against references: corpus BLEU (Papineni et al. 2002), as
 * captioning and translation report it.
 */

import { ValueError } from '../errors.js'

function ngrams(tokens: readonly string[], n: number): Map<string, number> {
  const m = new Map<string, number>()
  for (let i = 0; i + n <= tokens.length; i++) {
    const k = tokens.slice(i, i + n).join('\u0000')
    m.set(k, (m.get(k) ?? 0) + 1)
  }
  return m
}

/**
 * Corpus-level BLEU-N (default 4) of `hypotheses` (one token list each) against their
 * `references` (one or more token lists each), in [0, 1]: the geometric mean of the clipped
 * n-gram precisions for n = 1..N, summed over the corpus, times the brevity penalty
 * `min(1, exp(1 − r / c))` with r the sum of the reference lengths closest to each hypothesis
 * (the shorter on ties) and c the hypotheses' total length. No smoothing: a corpus without any
 * matching N-gram scores 0.
 */
export function corpusBleu(hypotheses: readonly (readonly string[])[], references: readonly (readonly (readonly string[])[])[], maxN = 4): number {
  const op = 'corpusBleu'
  if (hypotheses.length !== references.length) throw new ValueError(op, `expected one reference set per hypothesis, got ${hypotheses.length} hypotheses and ${references.length} reference sets`)
  if (!Number.isInteger(maxN) || maxN < 1) throw new ValueError(op, `maxN must be a positive integer, got ${maxN}`)
  const matched = new Array<number>(maxN).fill(0)
  const total = new Array<number>(maxN).fill(0)
  let c = 0
  let r = 0
  hypotheses.forEach((hyp, i) => {
    const refs = references[i]!
    if (refs.length === 0) throw new ValueError(op, `hypothesis ${i} has no reference`)
    c += hyp.length
    let best = refs[0]!.length
    for (const ref of refs) {
      const d = Math.abs(ref.length - hyp.length)
      const bd = Math.abs(best - hyp.length)
      if (d < bd || (d === bd && ref.length < best)) best = ref.length
    }
    r += best
    for (let n = 1; n <= maxN; n++) {
      const h = ngrams(hyp, n)
      const maxRef = new Map<string, number>()
      for (const ref of refs) for (const [k, v] of ngrams(ref, n)) maxRef.set(k, Math.max(maxRef.get(k) ?? 0, v))
      for (const [k, v] of h) matched[n - 1]! += Math.min(v, maxRef.get(k) ?? 0)
      total[n - 1]! += Math.max(0, hyp.length - n + 1)
    }
  })
  if (c === 0) return 0
  let logSum = 0
  for (let n = 0; n < maxN; n++) {
    if (matched[n] === 0 || total[n] === 0) return 0
    logSum += Math.log(matched[n]! / total[n]!)
  }
  const bp = c >= r ? 1 : Math.exp(1 - r / c)
  return bp * Math.exp(logSum / maxN)
}
