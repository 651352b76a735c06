/**
 * Training loops: {@link fit} over batches `{ x, y }` and {@link fitTBPTT} over a token stream
 * with truncated BPTT, both driving one shared loop. Both are async and never block the event
 * loop: each step enqueues its work and then awaits `optimizer.step()`, which resolves when the
 * *previous* step has run, so JS prepares step n+1 while step n computes. The loss of a step is
 * read (asynchronously) one step later, when it is already computed, so metrics never stall the
 * pipeline.
 *
 * Both return a {@link FitRun}: `await` it for the {@link FitResult}, or iterate it for the
 * progress events (`for await (const ev of fit(...))`), or both.
 */

import { Tensor } from '../../tensor.js'
import { seedState } from '../../ops/random.js'
import { ValueError } from '../../errors.js'
import { deviceOfFirst } from '../../device.js'
import { clipGradNorm } from '../../optim/clip.js'
import type { EpochSource } from '../../data/loader.js'
import type { TokenChunk } from '../../data/stream.js'
import { TBPTT, type TBPTTMeta } from '../tbptt.js'
import { loadCheckpoint, saveCheckpoint, type Checkpoint, type HasStateDict, type StatefulModule } from '../checkpoint.js'
import { Accumulator, countCorrect, isClassification, type Metrics } from './metrics.js'
import { FitRun, type EpochEndEvent, type FitResult, type StepEvent, type StopReason, type ValidationEvent } from './events.js'
import {
  batchOnDevice,
  checkIgnoreIndex,
  chunkTensors,
  countTargets,
  defaultChunkLoss,
  evaluate,
  evaluateStream,
  outputOf,
  type EvaluateOptions,
  type EvaluateStreamOptions,
} from './evaluate.js'
import { EarlyStopping, earlyStoppingConfig } from './early-stopping.js'
import { crossEntropy } from '../../nn/loss.js'
import {
  FIT_CHECKPOINT_OPTIONS,
  FIT_OPTIONS,
  FIT_TBPTT_OPTIONS,
  type Batch,
  type BatchInput,
  type BatchSource,
  type CommonFitOptions,
  type FitModel,
  type FitOptions,
  type FitTBPTTModel,
  type FitTBPTTOptions,
  type OptimizerLike,
} from './options.js'
import { boolArg, checkOptions, refusal, typeError } from '../../validate.js'

/** The JSON state of a loop, saved in checkpoints under `fit`. */
interface LoopMeta {
  epoch: number
  batch: number
  best: number | null
  bestEpoch: number
  wait: number
  history: EpochEndEvent[]
}

interface StepOut {
  loss: Tensor
  /** Targets of the step; with the task's `ignoreIndex`, counted from `target` once it is read. */
  count: number
  output: Tensor | null
  target: Tensor
  cleanup?: () => void
}

/** What differs between fit and fitTBPTT. */
interface Task<I> {
  model: { train?(mode?: boolean): unknown; eval?(): unknown } & Partial<StatefulModule>
  params: readonly Tensor[]
  /** Targets equal to this are padding: not counted in the averages. */
  ignoreIndex?: number | undefined
  items(epoch: number, skip: number): Iterable<I> | AsyncIterable<I>
  /** At the start of an epoch (not when resuming in its middle). */
  startEpoch(epoch: number): void
  trainStep(item: I): StepOut
  validate: ((signal?: AbortSignal) => Promise<Metrics>) | null
  extraState(): Record<string, { tensors?: Record<string, Tensor>; meta?: unknown }>
  loadExtraState(ck: Checkpoint): void
}

function checkPositive(what: string, v: unknown, integer = true): number {
  if (typeof v !== 'number' || !(v > 0) || (integer && !Number.isInteger(v))) {
    throw refusal('fit', what, `a positive ${integer ? 'integer' : 'number'}`, v, 'number')
  }
  return v
}

function checkCommon(o: CommonFitOptions, hasValidation: boolean) {
  if (!o.optimizer || typeof o.optimizer.step !== 'function' || typeof o.optimizer.zeroGrad !== 'function') {
    throw new ValueError('fit', 'options.optimizer must have zeroGrad() and step()')
  }
  const epochs = o.epochs === undefined ? 1 : checkPositive('epochs', o.epochs)
  const maxSteps = o.maxSteps === undefined ? Infinity : checkPositive('maxSteps', o.maxSteps)
  if (o.clipGradNorm !== undefined) checkPositive('clipGradNorm', o.clipGradNorm, false)
  if (o.validateEverySteps !== undefined) checkPositive('validateEverySteps', o.validateEverySteps)
  if (o.trainAccuracy !== undefined) boolArg('fit', 'trainAccuracy', o.trainAccuracy)
  for (const k of ['onStep', 'onValidation', 'onEpochEnd'] as const) {
    if (o[k] !== undefined && typeof o[k] !== 'function') throw typeError('fit', k, 'a function', o[k])
  }
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw typeError('fit', 'signal', 'an AbortSignal', o.signal)
  if (o.checkpoint !== undefined && o.checkpoint !== null) {
    checkOptions('fit', o.checkpoint, FIT_CHECKPOINT_OPTIONS, 'checkpoint')
    if (o.checkpoint.atEpochEnd !== undefined) boolArg('fit', 'checkpoint.atEpochEnd', o.checkpoint.atEpochEnd)
    if (typeof o.checkpoint.path !== 'string' || o.checkpoint.path === '') throw new ValueError('fit', 'checkpoint.path must be a file path')
    if (o.checkpoint.everySteps !== undefined) checkPositive('checkpoint.everySteps', o.checkpoint.everySteps)
  }
  const interval = o.schedulerInterval ?? 'epoch'
  if (interval !== 'epoch' && interval !== 'step') throw new ValueError('fit', `schedulerInterval must be 'epoch' or 'step', got '${String(interval)}'`)
  const es = earlyStoppingConfig(o.earlyStopping, hasValidation)
  return { epochs, maxSteps, interval, es }
}

async function* iterate<I>(src: Iterable<I> | AsyncIterable<I>): AsyncGenerator<I> {
  yield* src as AsyncIterable<I>
}

function runLoop<I>(task: Task<I>, o: CommonFitOptions, hasValidation: boolean): FitRun {
  const { epochs, maxSteps, interval, es } = checkCommon(o, hasValidation)
  const opt = o.optimizer
  return new FitRun(async (emit) => {
    const t0 = performance.now()
    let step = 0
    let epoch = 0
    let skip = 0
    const stopper = new EarlyStopping(es)
    const history: EpochEndEvent[] = []
    let lastLoss: number | undefined
    let reason: StopReason = 'completed'

    if (o.resume !== undefined) {
      const ck = typeof o.resume === 'string' ? await loadCheckpoint(o.resume) : o.resume
      if (!task.model.loadStateDict) throw new ValueError('fit', 'resuming needs a model with loadStateDict()')
      ck.restore(task.model as StatefulModule, o.optimizer as HasStateDict, (o.scheduler as HasStateDict | undefined) ?? null)
      const meta = ck.extra.fit?.meta as LoopMeta | undefined
      if (!meta) throw new ValueError('fit', `'${ck.path}' was not written by fit (no 'fit' state)`)
      step = ck.step
      epoch = meta.epoch
      skip = meta.batch
      stopper.best = meta.best
      stopper.bestEpoch = meta.bestEpoch
      stopper.wait = meta.wait
      history.push(...meta.history)
      if (skip > 0) task.loadExtraState(ck)
    }

    const save = async (path: string, ep: number, batch: number) => {
      const meta: LoopMeta = { epoch: ep, batch, best: stopper.best, bestEpoch: stopper.bestEpoch, wait: stopper.wait, history }
      await saveCheckpoint(path, {
        model: task.model as StatefulModule,
        optimizer: typeof opt.stateDict === 'function' ? (opt as HasStateDict) : null,
        scheduler: o.scheduler && typeof o.scheduler.stateDict === 'function' ? (o.scheduler as HasStateDict) : null,
        step,
        rng: seedState(),
        config: o.checkpoint?.config ?? null,
        metadata: o.checkpoint?.metadata ?? null,
        extra: { fit: { meta }, ...(batch > 0 ? task.extraState() : {}) },
      })
      emit({ type: 'checkpoint', step, path })
    }

    let lastEventAt = performance.now()
    type Pending = StepOut & { step: number; epoch: number; batch: number; lr: number | undefined }
    let pending: Pending | null = null
    let acc = new Accumulator()

    const settle = async (p: Pending) => {
      const cls = p.target.dtype === 'int32'
      const ignore = task.ignoreIndex
      const wantAcc = o.trainAccuracy === true && p.output !== null && isClassification(p.output, p.target)
      const [loss, out, y] = await Promise.all([
        p.loss.item(),
        wantAcc ? p.output!.data() : null,
        wantAcc || (ignore !== undefined && cls) ? p.target.data() : null,
      ])
      lastLoss = loss
      const count = y && ignore !== undefined ? countTargets(y, ignore) : p.count
      acc.classes ||= cls
      acc.add(loss, count)
      let accuracy: number | undefined
      if (out && y && count > 0) {
        const c = countCorrect(out, y, ignore)
        acc.correct += c
        acc.accCount += count
        accuracy = c / count
      }
      p.loss.dispose()
      p.output?.dispose()
      p.cleanup?.()
      const now = performance.now()
      const ev: StepEvent = {
        type: 'step',
        step: p.step,
        epoch: p.epoch,
        batch: p.batch,
        loss,
        count,
        tokensPerSec: count / Math.max(1e-9, (now - lastEventAt) / 1000),
        elapsedMs: now - t0,
      }
      lastEventAt = now
      if (cls) ev.perplexity = Math.exp(loss)
      if (accuracy !== undefined) ev.accuracy = accuracy
      if (p.lr !== undefined) ev.lr = p.lr
      emit(ev)
      await o.onStep?.(ev)
    }
    const flush = async () => {
      const p = pending
      pending = null
      if (p) await settle(p)
    }
    const validate = async (ep: number): Promise<Metrics | undefined> => {
      if (!task.validate) return undefined
      const metrics = await task.validate(o.signal)
      const ev: ValidationEvent = { type: 'validation', step, epoch: ep, metrics }
      emit(ev)
      await o.onValidation?.(ev)
      return metrics
    }

    task.model.train?.(true)
    try {
      outer: for (; epoch < epochs; epoch++) {
        const epochStart = performance.now()
        acc = new Accumulator()
        if (skip === 0) task.startEpoch(epoch)
        let batch = skip
        let any = false
        for await (const item of iterate(task.items(epoch, skip))) {
          if (o.signal?.aborted) {
            reason = 'aborted'
            break outer
          }
          if (step >= maxSteps) {
            reason = 'maxSteps'
            break outer
          }
          any = true
          opt.zeroGrad()
          const out = task.trainStep(item)
          if (o.clipGradNorm !== undefined) clipGradNorm(task.params, o.clipGradNorm).dispose()
          const lr = opt.lr
          await opt.step()
          step++
          if (interval === 'step') o.scheduler?.step()
          const prev = pending
          pending = { ...out, step, epoch, batch, lr }
          batch++
          if (prev) await settle(prev)
          if (o.validateEverySteps !== undefined && step % o.validateEverySteps === 0) {
            await flush()
            await validate(epoch)
          }
          if (o.checkpoint?.everySteps !== undefined && step % o.checkpoint.everySteps === 0) {
            await save(o.checkpoint.path, epoch, batch)
          }
        }
        await flush()
        if (!any && skip === 0) {
          throw new ValueError('fit', `the data yielded no batch in epoch ${epoch}: for several epochs pass an array, a DataLoader or a function (epoch, skip) => iterable`)
        }
        skip = 0
        if (o.signal?.aborted) {
          reason = 'aborted'
          break
        }
        // ---- epoch end
        const train = { ...acc.metrics(), tokensPerSec: acc.count / Math.max(1e-9, (performance.now() - epochStart) / 1000) }
        const validation = await validate(epoch)
        if (o.signal?.aborted) {
          reason = 'aborted'
          break
        }
        const ev: EpochEndEvent = { type: 'epochEnd', epoch, step, train, durationMs: performance.now() - epochStart }
        if (validation) ev.validation = validation
        if (opt.lr !== undefined) ev.lr = opt.lr
        history.push(ev)
        const { monitored, stop } = stopper.epochEnd(epoch, train, validation, task.params)
        if (interval === 'epoch' && o.scheduler) {
          o.scheduler.step(monitored ?? validation?.loss ?? train.loss)
        }
        emit(ev)
        await o.onEpochEnd?.(ev)
        if (o.checkpoint && (o.checkpoint.atEpochEnd ?? o.checkpoint.everySteps === undefined)) {
          await save(o.checkpoint.path, epoch + 1, 0)
        }
        if (stop) {
          reason = 'earlyStopping'
          stopper.restoreBest(task.params)
          epoch++
          break
        }
      }
    } finally {
      // Leave the model usable whatever happened: read the last loss, back to train mode.
      if (pending) await flush().catch(() => {})
      task.model.train?.(true)
    }
    const result: FitResult = {
      reason,
      aborted: reason === 'aborted',
      stoppedEarly: reason === 'earlyStopping',
      steps: step,
      epochs: history.length,
      history,
    }
    if (lastLoss !== undefined) result.lastLoss = lastLoss
    const best = stopper.summary()
    if (best) result.best = best
    return result
  })
}

function paramsOf(what: string, model: { parameters?(): Tensor[] }, opt: OptimizerLike): readonly Tensor[] {
  if (opt.params) return opt.params
  if (typeof model.parameters === 'function') return model.parameters()
  throw new ValueError(what, 'cannot find the parameters: give an optimizer with .params or a model with parameters()')
}

function sourceItems<B>(src: BatchSource<B>, epoch: number, skip: number): Iterable<B> | AsyncIterable<B> {
  if (typeof src === 'function') return src(epoch, skip)
  if (src && typeof (src as EpochSource<B>).epoch === 'function') return (src as EpochSource<B>).epoch(epoch, skip)
  const it = src as Iterable<B> | AsyncIterable<B>
  if (skip === 0) return it
  return (async function* () {
    let i = 0
    for await (const b of it as AsyncIterable<B>) if (i++ >= skip) yield b
  })()
}

function checkSource(what: string, src: unknown): void {
  const ok =
    typeof src === 'function' ||
    (src !== null &&
      typeof src === 'object' &&
      (typeof (src as EpochSource<unknown>).epoch === 'function' || Symbol.iterator in src || Symbol.asyncIterator in src))
  if (!ok) throw new ValueError('fit', `${what} must be an iterable, an async iterable, a DataLoader or a function (epoch, skip) => iterable`)
}

/**
 * Trains `model` on batches `{ x, y }` (`x` one tensor, or several by name that `forward`
 * receives as one object): for each batch, `zeroGrad`, `loss(forward(x), y)`,
 * `backward`, optional gradient clipping, `await optimizer.step()`. Epochs, validation at each
 * epoch end, metrics (loss, perplexity and accuracy for int32 targets, targets/s), callbacks,
 * progress events, early stopping, periodic checkpoints and resuming, and cancellation by
 * AbortSignal (between steps: the model stays usable). Batches on another device than the
 * model's parameters (a `DataLoader` makes them on the CPU) are copied to it for each step.
 * With `ignoreIndex`, padding targets are left out of every per-target average.
 *
 * ```ts
 * const run = fit(model, { data: loader, loss: crossEntropy, optimizer: opt, epochs: 10, validation: valBatches })
 * for await (const ev of run) if (ev.type === 'epochEnd') console.log(ev.epoch, ev.train.loss, ev.validation?.loss)
 * const result = await run
 * ```
 */
export function fit<X extends BatchInput<X> = Tensor>(model: FitModel<X>, options: FitOptions<X>): FitRun {
  if (model === null || typeof model !== 'object' || typeof model.forward !== 'function') throw new ValueError('fit', 'model must have forward(x)')
  if (options === null || typeof options !== 'object') throw new ValueError('fit', 'options are required')
  checkOptions('fit', options, FIT_OPTIONS)
  checkSource('options.data', options.data)
  if (options.validation !== undefined) checkSource('options.validation', options.validation)
  if (options.loss !== undefined && typeof options.loss !== 'function') throw new ValueError('fit', 'options.loss must be a function (output, target) => scalar Tensor')
  const ignoreIndex = checkIgnoreIndex('fit', options.ignoreIndex)
  const ceOptions = ignoreIndex === undefined ? {} : { ignoreIndex }
  const loss = options.loss ?? ((output: Tensor, target: Tensor) => crossEntropy(output, target, ceOptions))
  const fwd = options.forward ?? ((x: X) => model.forward(x))
  const validation = options.validation
  const task: Task<Batch<X>> = {
    model: model as Task<Batch<X>>['model'],
    params: paramsOf('fit', model, options.optimizer),
    ignoreIndex,
    items: (e, skip) => sourceItems(options.data, e, skip),
    startEpoch: () => {},
    trainStep: (b) => {
      // Batches go to the parameters' device (a DataLoader makes them on the CPU).
      const { x, y, free } = batchOnDevice<X>('fit', b, deviceOfFirst(task.params), ignoreIndex)
      let out: Tensor
      let l: unknown
      try {
        out = outputOf(fwd(x), 'fit')
        l = loss(out, y)
      } finally {
        free()
      }
      if (!(l instanceof Tensor) || l.size !== 1) throw new ValueError('fit', 'the loss must return a one-element Tensor')
      l.backward()
      const r: StepOut = { loss: l.detach(), count: b.y.size, output: options.trainAccuracy ? out.detach() : null, target: b.y }
      l.dispose()
      out.dispose()
      return r
    },
    validate: validation
      ? (signal) => {
          const opts: EvaluateOptions<X> = { forward: fwd }
          if (signal) opts.signal = signal
          if (ignoreIndex !== undefined) opts.ignoreIndex = ignoreIndex
          return evaluate(model, iterate(sourceItems(validation, 0, 0)), loss, opts)
        }
      : null,
    extraState: () => ({}),
    loadExtraState: () => {},
  }
  return runLoop(task, options, validation !== undefined)
}

/**
 * Trains a {@link StatefulModel} on a token stream with truncated BPTT(k1, k2), k1 =
 * `stream.seqLen`: each chunk is one optimizer step, the hidden state carries across chunks
 * (detached) and resets where the stream says. An epoch is one pass over the stream; the state
 * starts from zero at each epoch. Validation evaluates the validation stream with the state
 * carried. Checkpoints also save the carried TBPTT state, so a resume mid-stream continues
 * bit-identically. Everything else is as in {@link fit}.
 *
 * ```ts
 * const stream = await fileStream('input.txt', { batchSize: 32, seqLen: 64, vocab })
 * const model = new RecurrentLM({ vocabSize: vocab.size, hiddenSize: 256 })
 * const result = await fitTBPTT(model, { stream, k2: 128, optimizer: new Adam(model.parameters(), { lr: 2e-3 }), epochs: 5 })
 * ```
 */
export function fitTBPTT(model: FitTBPTTModel, options: FitTBPTTOptions): FitRun {
  if (model === null || typeof model !== 'object' || typeof model.forward !== 'function') throw new ValueError('fitTBPTT', 'model must have forward(x, state)')
  if (options === null || typeof options !== 'object') throw new ValueError('fitTBPTT', 'options are required')
  checkOptions('fitTBPTT', options, FIT_TBPTT_OPTIONS)
  const stream = options.stream
  if (!stream || typeof stream.chunks !== 'function') throw new ValueError('fitTBPTT', 'options.stream must be a TokenStream (arrayStream, fileStream, blockStream)')
  const loss = options.loss ?? defaultChunkLoss
  const axis = options.stateBatchAxis ?? 1
  const tbptt = new TBPTT(model, { k1: stream.seqLen, k2: options.k2 ?? stream.seqLen, loss, stateBatchAxis: axis })
  const validation = options.validation
  const task: Task<TokenChunk> = {
    model: model as Task<TokenChunk>['model'],
    params: paramsOf('fitTBPTT', model, options.optimizer),
    items: (_e, skip) => stream.chunks(skip),
    startEpoch: () => tbptt.reset(),
    trainStep: (c) => {
      const { x, y, reset } = chunkTensors(c, deviceOfFirst(task.params))
      const r = tbptt.backward({ x, y, reset })
      x.dispose()
      return {
        loss: r.loss,
        count: r.count,
        output: options.trainAccuracy ? r.output : (r.output.dispose(), null),
        target: y,
        cleanup: () => y.dispose(),
      }
    },
    validate: validation
      ? (signal) => {
          const opts: EvaluateStreamOptions = { stateBatchAxis: axis }
          if (signal) opts.signal = signal
          return evaluateStream(model, validation, loss, opts)
        }
      : null,
    extraState: () => ({ tbptt: tbptt.stateDict() }),
    loadExtraState: (ck) => {
      const e = ck.extra.tbptt
      if (!e) throw new ValueError('fitTBPTT', `'${ck.path}' holds no TBPTT state`)
      tbptt.loadStateDict({ tensors: e.tensors, meta: e.meta as TBPTTMeta })
    },
  }
  return runLoop(task, options, validation !== undefined)
}
