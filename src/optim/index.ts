/** Optimizers: the `optim` part of the public API. */

export { Optimizer } from './optimizer.js'
export { SGD, type SGDOptions } from './sgd.js'
export { Adam, type AdamOptions } from './adam.js'
