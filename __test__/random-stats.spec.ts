/**
 * Distribution checks of the random generators (randn, randUniform, dropout masks, and the
 * integer draws of the seeded shuffle, epochPermutation): mean, variance, fourth moment, tail
 * and bin frequencies, and the correlation of neighbours, at fixed seeds.
 *
 * How the bounds are set: every statistic below is an average of n independent terms, so under
 * a correct generator it is close to normal with a standard error SE = sqrt(Var(term) / n),
 * where Var(term) comes from the distribution itself (stated beside each check). A check allows
 * 6 SE: a correct generator exceeds that with probability about 2·10⁻⁹ whatever the seed, so a
 * seed change never makes these tests fail, while with n = 2²⁰ a 1 % error in the variance
 * (6·sqrt(2/n) ≈ 0.8 %) or a 0.2-point error in a tail frequency is caught. The seeds only make
 * the runs repeatable; the bounds were not tuned to them.
 */

import test, { type ExecutionContext } from 'ava'

import { dropout, epochPermutation, ones, randUniform, randn } from '../index.js'

const N = 1 << 20
const K = 6

/** Asserts |got − want| ≤ K·se, naming the statistic. */
function near(t: ExecutionContext, what: string, got: number, want: number, se: number): void {
  const z = (got - want) / se
  t.true(Math.abs(z) <= K, `${what}: ${got} vs ${want} (${z.toFixed(1)} standard errors; bound ${K})`)
}

/** Mean, central moments 2 and 4, and lag-1 autocorrelation of `x`, in float64. */
function moments(x: ArrayLike<number>): { mean: number; m2: number; m4: number; lag1: number } {
  const n = x.length
  let s = 0
  for (let i = 0; i < n; i++) s += x[i]!
  const mean = s / n
  let m2 = 0
  let m4 = 0
  let c1 = 0
  for (let i = 0; i < n; i++) {
    const d = x[i]! - mean
    m2 += d * d
    m4 += d * d * d * d
    if (i + 1 < n) c1 += d * (x[i + 1]! - mean)
  }
  return { mean, m2: m2 / n, m4: m4 / n, lag1: c1 / (n - 1) / (m2 / n) }
}

/** Fraction of `x` for which `pred` holds. */
function fraction(x: ArrayLike<number>, pred: (v: number) => boolean): number {
  let k = 0
  for (let i = 0; i < x.length; i++) if (pred(x[i]!)) k++
  return k / x.length
}

/** Standard error of a frequency p estimated from n independent draws (binomial). */
const seFreq = (p: number, n: number) => Math.sqrt((p * (1 - p)) / n)

for (const [dtype, seed] of [
  ['float32', 11],
  ['float64', 12],
] as const) {
  test(`randn (${dtype}) is N(0, 1): mean, variance, fourth moment, tails, independence of neighbours`, async (t) => {
    const x = await randn([N], { seed, dtype }).data()
    const m = moments(x)
    // Mean of n draws of N(0, 1): Var = 1.
    near(t, 'mean', m.mean, 0, Math.sqrt(1 / N))
    // Sample variance of normals: Var(s²) = 2σ⁴ / n.
    near(t, 'variance', m.m2, 1, Math.sqrt(2 / N))
    // Fourth moment of N(0, 1) is 3; Var(z⁴) = E z⁸ − 9 = 105 − 9 = 96.
    near(t, 'fourth moment', m.m4, 3, Math.sqrt(96 / N))
    // Two-sided tails of N(0, 1): P(|z| > 2) = 0.0455003, P(|z| > 3) = 0.0026998; binomial SEs.
    near(t, 'P(|z| > 2)', fraction(x, (v) => Math.abs(v) > 2), 0.0455003, seFreq(0.0455003, N))
    near(t, 'P(|z| > 3)', fraction(x, (v) => Math.abs(v) > 3), 0.0026998, seFreq(0.0026998, N))
    // Symmetry: P(z > 0) = 1/2.
    near(t, 'P(z > 0)', fraction(x, (v) => v > 0), 0.5, seFreq(0.5, N))
    // Lag-1 autocorrelation of independent draws: mean 0, SE 1/sqrt(n).
    near(t, 'lag-1 autocorrelation', m.lag1, 0, Math.sqrt(1 / N))
  })
}

test('randUniform(−2, 3) is U(−2, 3): range, mean, variance, ten equal bins, independence of neighbours', async (t) => {
  const [a, b] = [-2, 3]
  const x = await randUniform([N], a, b, { seed: 21, dtype: 'float64' }).data()
  t.true(
    x.every((v) => v >= a && v < b),
    'every value in [low, high)',
  )
  const m = moments(x)
  const w = b - a
  // U(a, b): mean (a+b)/2, variance w²/12, fourth central moment w⁴/80, so
  // Var(s²) = (μ4 − σ⁴)/n = (w⁴/80 − w⁴/144)/n.
  near(t, 'mean', m.mean, (a + b) / 2, Math.sqrt(w ** 2 / 12 / N))
  near(t, 'variance', m.m2, w ** 2 / 12, Math.sqrt((w ** 4 / 80 - w ** 4 / 144) / N))
  // Each tenth of [a, b) holds 10 % of the draws (binomial SE each).
  for (let k = 0; k < 10; k++) {
    const lo = a + (k * w) / 10
    const hi = a + ((k + 1) * w) / 10
    near(t, `bin ${k}`, fraction(x, (v) => v >= lo && v < hi), 0.1, seFreq(0.1, N))
  }
  near(t, 'lag-1 autocorrelation', m.lag1, 0, Math.sqrt(1 / N))
  // float32 draws cover the same range.
  const y = await randUniform([N], a, b, { seed: 22 }).data()
  near(t, 'float32 mean', moments(y).mean, (a + b) / 2, Math.sqrt(w ** 2 / 12 / N))
})

for (const p of [0.1, 0.5, 0.8]) {
  test(`dropout(p = ${p}) keeps a 1 − p fraction, independently, scaled by 1/(1 − p), so the mean is unchanged`, async (t) => {
    const y = await dropout(ones([N], { dtype: 'float64' }), p, { seed: 31 }).data()
    const scale = 1 / (1 - p)
    t.true(
      y.every((v) => v === 0 || v === scale),
      'every output is 0 or 1/(1 − p)',
    )
    // Kept fraction: binomial with q = 1 − p.
    const q = 1 - p
    near(t, 'kept fraction', fraction(y, (v) => v !== 0), q, seFreq(q, N))
    // The output mean: each term is scale with probability q, else 0, so Var = q(1−q)·scale².
    near(t, 'mean', moments(y).mean, 1, Math.sqrt((q * (1 - q) * scale * scale) / N))
    // Disjoint pairs (2i, 2i+1) are independent draws: both kept with probability q², binomial
    // over n/2 pairs. Correlated neighbours (a mask drawn in runs) would move this.
    let both = 0
    for (let i = 0; i + 1 < N; i += 2) if (y[i] !== 0 && y[i + 1] !== 0) both++
    near(t, 'both of a pair kept', both / (N / 2), q * q, seFreq(q * q, N / 2))
  })
}

// The library's integer draws are the Fisher–Yates index draws of the seeded shuffle (there is no
// randint op; categorical sampling is checked in decode.spec.ts). A uniform random permutation of
// n puts each value at each position with probability 1/n. Over E independent permutations the
// n×n table of counts has rows and columns summing to E, and its Pearson statistic
// Σ (count − E/n)² / (E/n) is χ² with (n − 1)² degrees of freedom: mean d, standard deviation
// sqrt(2d). The bound is d + 6·sqrt(2d) (exceeded with probability ~1e-6 under a correct
// shuffle); a swap index drawn from [0, i) instead of [0, i] (never a fixed point) or from
// [0, n) (the classic biased shuffle) exceeds it by orders of magnitude at E = 10⁵.
const PERM_N = 10
const PERM_E = 100_000

function positionValueTable(perm: (k: number) => Int32Array): { chi2: number; valid: boolean } {
  const counts = new Float64Array(PERM_N * PERM_N)
  let valid = true
  for (let k = 0; k < PERM_E; k++) {
    const p = perm(k)
    const seen = new Uint8Array(PERM_N)
    for (let i = 0; i < PERM_N; i++) {
      const v = p[i]!
      if (!(v >= 0 && v < PERM_N) || seen[v]) valid = false
      else seen[v] = 1
      counts[i * PERM_N + v]!++
    }
  }
  const expected = PERM_E / PERM_N
  let chi2 = 0
  for (const c of counts) chi2 += (c - expected) ** 2 / expected
  return { chi2, valid }
}

for (const [what, perm] of [
  ['over epochs (seed 5)', (k: number) => epochPermutation(PERM_N, 5, k)],
  ['over seeds (epoch 3)', (k: number) => epochPermutation(PERM_N, 1000 + 7919 * k, 3)],
] as const) {
  test(`epochPermutation: every value is equally likely at every position, ${what}`, (t) => {
    const { chi2, valid } = positionValueTable(perm)
    t.true(valid, 'every draw is a permutation of [0, n)')
    const d = (PERM_N - 1) ** 2
    const bound = d + 6 * Math.sqrt(2 * d)
    t.true(chi2 <= bound, `position × value χ² = ${chi2.toFixed(1)} on ${d} degrees of freedom (bound ${bound.toFixed(1)})`)
  })
}

test('epochPermutation: the relative order of two values is a fair coin, and neighbours are independent', (t) => {
  // P(value 0 before value 1) = 1/2; P(positions 0 and 1 hold an increasing pair) = 1/2; and
  // P(p[0] < p[1] and p[2] < p[3]) = 1/4 for independent disjoint pairs. Binomial over E draws.
  let before = 0
  let rising = 0
  let bothRising = 0
  for (let k = 0; k < PERM_E; k++) {
    const p = epochPermutation(PERM_N, 9, k)
    if (p.indexOf(0) < p.indexOf(1)) before++
    const r1 = p[0]! < p[1]!
    const r2 = p[2]! < p[3]!
    if (r1) rising++
    if (r1 && r2) bothRising++
  }
  near(t, 'value 0 before value 1', before / PERM_E, 0.5, seFreq(0.5, PERM_E))
  near(t, 'p[0] < p[1]', rising / PERM_E, 0.5, seFreq(0.5, PERM_E))
  near(t, 'p[0] < p[1] and p[2] < p[3]', bothRising / PERM_E, 0.25, seFreq(0.25, PERM_E))
})
