#!/usr/bin/env node
// Installs the independent references of the specs and benches (oracles/: onnxruntime-node)
// when they are missing or their lockfile changed. onnxruntime-node's install script would
// fetch CUDA extras from outside the npm registry; ONNXRUNTIME_NODE_INSTALL=skip keeps it to
// the CPU library the package ships.
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'oracles')
const lock = readFileSync(join(dir, 'package-lock.json'))
const want = createHash('sha256').update(lock).digest('hex')
const stamp = join(dir, 'node_modules', '.installed-lock.sha256')
if (existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === want && existsSync(join(dir, 'node_modules', 'onnxruntime-node'))) {
  process.exit(0)
}
console.error('oracles: installing onnxruntime-node into oracles/node_modules (npm ci)')
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const r = spawnSync(npm, ['ci', '--no-audit', '--no-fund', '--loglevel=error'], {
  cwd: dir,
  stdio: 'inherit',
  env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' },
  shell: process.platform === 'win32',
})
if (r.status !== 0) {
  console.error(`oracles: npm ci failed (exit ${r.status ?? r.signal})`)
  process.exit(1)
}
writeFileSync(stamp, `${want}\n`)
