/**
 * Module registration by assignment (PyTorch's `__setattr__`): children and parameters assigned
 * as properties (class fields or constructor assignments) register themselves, in declaration
 * order, mixed with explicit `registerModule`/`registerParameter`; they train, convert, save and
 * load; reassignment updates the registry; what is not registered (plain tensors, aliases,
 * back-references) stays out.
 */

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import test from 'ava'

import {
  Embedding,
  GRU,
  LSTM,
  Linear,
  Module,
  SGD,
  Sequential,
  Tanh,
  type Tensor,
  ValueError,
  full,
  loadTorchStateDict,
  mse,
  ones,
  parameter,
  randn,
  reshape,
  saveTorchStateDict,
  slice,
  tidy,
  zeros,
} from '../index.js'

function values(t: Tensor): number[] {
  return Array.from(t.dataSync())
}

const names = (m: Module) => m.namedParameters().map(([n]) => n)

/** Children as fields only: the issue's `this.head = new Linear(...)` case. */
class Forecaster extends Module {
  lstm = new LSTM(2, 8, { seed: 1 })
  head = new Linear(8, 1, { seed: 2 })
  forward(x: Tensor): Tensor {
    const [T, B] = x.shape as [number, number]
    const { output } = this.lstm.forward(x)
    return this.head.forward(reshape(slice(output, 0, T - 1, 1), [B, 8]))
  }
}

/** Every way mixed: field, explicit field, constructor assignments, a property parameter. */
class Mixed extends Module {
  embed = new Embedding(10, 4, { seed: 3 })
  rnn = this.registerModule('rnn', new GRU(4, 6, { seed: 4 }))
  gain: Tensor
  head: Linear
  constant = ones([6])
  constructor(seed = 5) {
    super()
    this.gain = parameter(full([6], 1.5))
    this.head = new Linear(6, 3, { seed })
    this.registerModule('extra', new Linear(3, 3, { seed: seed + 1 }))
  }
  forward(tokens: Tensor): Tensor {
    const { hN } = this.rnn.forward(this.embed.forward(tokens))
    return this.head.forward(reshape(hN, [hN.shape[1]!, 6]).mul(this.gain).mul(this.constant))
  }
}

const MIXED_NAMES = [
  'gain',
  'embed.weight',
  'rnn.weight_ih_l0',
  'rnn.weight_hh_l0',
  'rnn.bias_ih_l0',
  'rnn.bias_hh_l0',
  'head.weight',
  'head.bias',
  'extra.weight',
  'extra.bias',
]

test('a model with children assigned as class fields trains: every parameter gets a gradient and moves', (t) => {
  const m = new Forecaster()
  t.deepEqual(names(m), [
    'lstm.weight_ih_l0',
    'lstm.weight_hh_l0',
    'lstm.bias_ih_l0',
    'lstm.bias_hh_l0',
    'head.weight',
    'head.bias',
  ])
  t.deepEqual(m.children(), [m.lstm, m.head])
  t.is(m.numParameters(), 4 * 8 * 2 + 4 * 8 * 8 + 2 * 4 * 8 + 8 + 1)
  const before = m.parameters().map(values)
  const opt = new SGD(m.parameters(), { lr: 0.5 })
  const x = randn([5, 3, 2], { seed: 7 })
  const y = randn([3, 1], { seed: 8 })
  const losses: number[] = []
  for (let i = 0; i < 3; i++) {
    opt.zeroGrad()
    const loss = tidy(() => mse(m.forward(x), y))
    losses.push(loss.itemSync())
    loss.backward()
    if (i === 0) {
      for (const [n, p] of m.namedParameters()) {
        t.truthy(p.grad, `${n} has a gradient`)
        t.true(values(p.grad!).some((v) => v !== 0), `${n}'s gradient is not all zero`)
      }
    }
    opt.step()
  }
  m.parameters().forEach((p, i) => {
    t.notDeepEqual(values(p), before[i], `parameter ${i} changed`)
  })
  t.true(losses[2]! < losses[0]!, `the loss went down: ${losses.join(', ')}`)
})

test('names and order: own parameters first, then children in declaration order, whichever way registered', (t) => {
  const m = new Mixed()
  t.deepEqual(names(m), MIXED_NAMES)
  t.deepEqual(Object.keys(m.stateDict()), MIXED_NAMES)
  t.deepEqual(
    m.namedChildren().map(([n]) => n),
    ['embed', 'rnn', 'head', 'extra'],
  )
  t.true(m.gain.requiresGrad)
  // A plain tensor (no requiresGrad) is an ordinary property: not a parameter, not a buffer.
  t.false(m.parameters().includes(m.constant))
  t.deepEqual(m.buffers(), [])
  t.regex(m.toString(), /\(embed\): Embedding[\s\S]*\(rnn\): GRU[\s\S]*\(head\): Linear[\s\S]*\(extra\): Linear/)
  // Subclass fields come after the base class's, as PyTorch's __init__ chain would.
  class Deeper extends Forecaster {
    extra = new Linear(1, 1, { seed: 9 })
  }
  t.deepEqual(names(new Deeper()).slice(-4), ['head.weight', 'head.bias', 'extra.weight', 'extra.bias'])
})

test("to('float64'), train/eval and a save/load round trip cover the assigned children and parameters", async (t) => {
  const m = new Mixed().to('float64')
  t.true(m.parameters().every((p) => p.dtype === 'float64'))
  t.is(m.gain.dtype, 'float64')
  t.is(m.head.weight.dtype, 'float64')
  m.eval()
  t.true(m.modules().every((x) => !x.training))
  m.train()
  t.true(m.head.training && m.embed.training)

  const dir = mkdtempSync(join(tmpdir(), 'recurrent-modreg-'))
  try {
    const a = new Mixed(5)
    const path = join(dir, 'mixed.safetensors')
    await saveTorchStateDict(a, path)
    const b = new Mixed(50)
    b.gain.assign(full([6], -2))
    t.notDeepEqual(values(b.head.weight), values(a.head.weight))
    t.deepEqual(await loadTorchStateDict(b, path), { missingKeys: [], unexpectedKeys: [] })
    for (const [n, p] of a.namedParameters()) t.deepEqual(values(b.stateDict()[n]!), values(p), n)
    const tokens = zeros([4, 2], { dtype: 'int32' })
    t.deepEqual(values(b.forward(tokens)), values(a.forward(tokens)))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('reassigning a property updates the registry in place, as PyTorch', (t) => {
  const m = new Mixed()
  // A new child under an assigned name, then under an explicitly registered one.
  const head2 = new Linear(6, 3, { seed: 77 })
  m.head = head2
  t.is(m.stateDict()['head.weight'], head2.weight)
  t.deepEqual(names(m), MIXED_NAMES)
  const rnn2 = new GRU(4, 6, { seed: 78 })
  m.rnn = rnn2
  t.is(m.stateDict()['rnn.weight_hh_l0'], rnn2.layerWeights(0).wHh)
  t.deepEqual(names(m), MIXED_NAMES)
  // A new parameter tensor.
  const g2 = parameter(zeros([6]))
  m.gain = g2
  t.is(m.parameters()[0], g2)
  // null: registered but absent, and back in its place when set again.
  ;(m as { head: Linear | null }).head = null
  t.deepEqual(
    names(m).filter((n) => n.startsWith('head')),
    [],
  )
  t.false(m.children().includes(head2))
  m.head = head2
  t.deepEqual(names(m), MIXED_NAMES)
  // delete, or a value that is no module: an assigned name is unregistered.
  delete (m as { head?: Linear }).head
  t.false(names(m).some((n) => n.startsWith('head.')))
  const n = new Mixed()
  ;(n as unknown as { head: number }).head = 3
  t.false(names(n).some((x) => x.startsWith('head.')))
  // An assigned parameter replaced by a plain tensor becomes a plain property.
  ;(n as { gain: Tensor }).gain = ones([6])
  t.false(names(n).includes('gain'))
})

test('explicit registration works as before, alone or taking over an assigned name; a parameter name refuses a tensor without requiresGrad', (t) => {
  class Explicit extends Module {
    w: Tensor
    lin: Linear
    constructor() {
      super()
      this.lin = this.registerModule('lin', new Linear(2, 2, { seed: 1 }))
      // A property of another name for an explicit parameter: listed once, under its registered name.
      this.w = this.registerParameter('weight', randn([2], { seed: 2 }))
    }
    forward(x: Tensor): Tensor {
      return this.lin.forward(x).mul(this.w)
    }
  }
  const e = new Explicit()
  t.deepEqual(names(e), ['weight', 'lin.weight', 'lin.bias'])
  t.deepEqual(Object.keys(e.stateDict()), ['weight', 'lin.weight', 'lin.bias'])
  t.throws(() => e.registerModule('lin', new Linear(2, 2)), { instanceOf: ValueError, message: /'lin' is already registered in Explicit/ })

  // Assigned first, then registered explicitly under the same name: one entry, in place.
  class TakeOver extends Module {
    a = new Linear(1, 1, { seed: 3 })
    b: Linear
    constructor() {
      super()
      this.b = new Linear(1, 1, { seed: 4 })
      this.registerModule('a', this.a)
    }
    forward(x: Tensor): Tensor {
      return this.b.forward(this.a.forward(x))
    }
  }
  const to = new TakeOver()
  t.deepEqual(names(to), ['a.weight', 'a.bias', 'b.weight', 'b.bias'])
  t.throws(() => to.registerModule('a', to.a), { message: /already registered/ })

  // Existing modules keep their names and order.
  t.deepEqual(names(new Sequential(new Linear(2, 3), new Tanh(), new Linear(3, 1))), ['0.weight', '0.bias', '2.weight', '2.bias'])
  t.deepEqual(names(new Linear(2, 3, { bias: false })), ['weight'])

  // PyTorch's TypeError: a registered parameter's name takes a parameter or null, not a plain tensor.
  const lin = new Linear(2, 2)
  ;(lin as unknown as { weight: Tensor }).weight = ones([2, 2])
  const err = t.throws(() => lin.parameters(), { instanceOf: ValueError })
  t.regex(err!.message, /Linear: 'weight' is a parameter: assign a leaf tensor with requiresGrad \(see parameter\(\)\) or null/)
})

test('not registered: aliases of a registered value, back-references (no cycle), op outputs, odd names', (t) => {
  class Child extends Module {
    lin = new Linear(2, 2, { seed: 1 })
    owner: Module | null = null
    forward(x: Tensor): Tensor {
      return this.lin.forward(x)
    }
  }
  class Parent extends Module {
    child = new Child()
    alias: Child
    derived: Tensor
    $cache = parameter(ones([1]))
    constructor() {
      super()
      this.alias = this.child
      this.child.owner = this
      this.derived = this.child.lin.weight.mul(2) // requires grad, but is an op's output
    }
    forward(x: Tensor): Tensor {
      return this.child.forward(x)
    }
  }
  // The module read first (the root) keeps its child; the back-reference stays out of the tree.
  const p = new Parent()
  t.deepEqual(names(p), ['child.lin.weight', 'child.lin.bias'])
  t.deepEqual(
    p.namedModules().map(([n]) => n),
    ['', 'child', 'child.lin'],
  )
  t.deepEqual(names(p.child), ['lin.weight', 'lin.bias'])
  t.deepEqual(
    p.child.namedChildren().map(([n]) => n),
    ['lin'],
  )
  // A module cannot be its own child by assignment either.
  class Selfish extends Module {
    me: Module = this
    forward(): void {}
  }
  t.deepEqual(new Selfish().namedModules().length, 1)
})

test('parameter() keeps its tensor: a module built inside tidy keeps its property parameters', (t) => {
  const m = tidy(() => new Mixed())
  t.false(m.gain.isDisposed)
  t.true(m.parameters().every((x) => !x.isDisposed))
  t.deepEqual(values(m.gain), [1.5, 1.5, 1.5, 1.5, 1.5, 1.5])
  const leaf = parameter(ones([2]))
  t.throws(() => parameter(leaf.mul(2)), { instanceOf: ValueError, message: /parameter: expected a leaf tensor/ })
  t.throws(() => parameter(null as never), { instanceOf: ValueError, message: /parameter: expected a Tensor, got null/ })
})
