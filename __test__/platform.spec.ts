/**
 * The native-addon lookup of src/platform.ts, played on other machines: the unsupported-platform
 * and missing-package errors by content, the lookup order, and the target table against
 * package.json's `napi.targets`. The addon itself is loaded by every other spec.
 */

import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import {
  type AddonLookup,
  type HostPlatform,
  PLATFORM_TARGETS,
  detectHost,
  resolveAddon,
  targetFor,
  unsupportedPlatformMessage,
} from '../src/platform.js'

const root = new URL('..', import.meta.url).pathname
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string; napi: { targets: string[] } }

const mac: HostPlatform = { platform: 'darwin', arch: 'arm64', libc: null, glibcVersion: null }
const oldGlibc: HostPlatform = { platform: 'linux', arch: 'x64', libc: 'glibc', glibcVersion: '2.12' }
const ubuntu20: HostPlatform = { platform: 'linux', arch: 'x64', libc: 'glibc', glibcVersion: '2.31' }
const alpineArm: HostPlatform = { platform: 'linux', arch: 'arm64', libc: 'musl', glibcVersion: null }
const freebsd: HostPlatform = { platform: 'freebsd', arch: 'x64', libc: null, glibcVersion: null }

/** A lookup that finds nothing on disk and no package, unless told otherwise. */
function lookup(host: HostPlatform, over: Partial<AddonLookup> = {}): AddonLookup {
  return {
    host,
    root: '/pkg',
    require: (id) => {
      throw Object.assign(new Error(`Cannot find module '${id}'`), { code: 'MODULE_NOT_FOUND' })
    },
    exists: () => false,
    ...over,
  }
}

test('the target table lists the same Rust targets as package.json napi.targets', (t) => {
  t.deepEqual(PLATFORM_TARGETS.map((x) => x.rustTarget).sort(), [...pkg.napi.targets].sort())
  t.is(new Set(PLATFORM_TARGETS.map((x) => x.key)).size, PLATFORM_TARGETS.length)
})

test('targetFor picks by platform, arch, libc and glibc version', (t) => {
  t.is(targetFor(ubuntu20)?.key, 'linux-x64-gnu')
  t.is(targetFor({ ...ubuntu20, glibcVersion: '2.17' })?.key, 'linux-x64-gnu')
  t.is(targetFor(alpineArm)?.key, 'linux-arm64-musl')
  t.is(targetFor({ platform: 'win32', arch: 'x64', libc: null, glibcVersion: null })?.key, 'win32-x64-gnu')
  t.is(targetFor(oldGlibc), undefined)
  t.is(targetFor(mac), undefined)
  t.is(targetFor(freebsd), undefined)
  t.is(targetFor({ platform: 'linux', arch: 'ia32', libc: 'glibc', glibcVersion: '2.35' }), undefined)
})

test('this machine is detected as a supported platform', (t) => {
  const host = detectHost()
  t.is(host.platform, process.platform)
  if (process.platform === 'linux') t.truthy(host.libc, 'libc detected on Linux')
  t.truthy(targetFor(host), `no target for ${JSON.stringify(host)}`)
})

test('an unsupported platform gets an error naming it, the supported ones and how to build from source', (t) => {
  const r = resolveAddon(lookup(mac))
  t.false(r.ok)
  const msg = r.ok ? '' : r.message
  t.regex(msg, /^recurrent-nn: no prebuilt native addon for this platform: darwin arm64/)
  t.regex(msg, /Apple/)
  for (const target of PLATFORM_TARGETS) t.true(msg.includes(target.key), `lists ${target.key}`)
  t.regex(msg, /linux-x64-gnu \(glibc >= 2\.17\)/)
  t.regex(msg, /npm ci && npm run build && npm pack/)
  t.regex(msg, /Rust/)
  t.is(msg, unsupportedPlatformMessage(mac))

  const bsd = unsupportedPlatformMessage(freebsd)
  t.regex(bsd, /this platform: freebsd x64\./)
})

test('a glibc older than the binaries need is named with its version', (t) => {
  const msg = unsupportedPlatformMessage(oldGlibc)
  t.regex(msg, /linux x64 \(glibc 2\.12\) \(its glibc is older than the prebuilt addon needs\)/)
})

test('a supported platform without its package gets the package name and the install command', (t) => {
  const r = resolveAddon(lookup(alpineArm, { root }))
  t.false(r.ok)
  const msg = r.ok ? '' : r.message
  t.regex(msg, /the native addon for linux-arm64-musl is not installed/)
  t.regex(msg, /optional dependency recurrent-nn-linux-arm64-musl is missing/)
  t.regex(msg, /--omit=optional/)
  t.true(msg.includes(`npm install recurrent-nn-linux-arm64-musl@${pkg.version}`))
})

test('lookup order: RECURRENT_NATIVE_DIR, then native/ of the package, then the platform package', (t) => {
  const loaded: string[] = []
  const req = (id: string): unknown => {
    loaded.push(id)
    return { id }
  }
  const local = join('/pkg', 'native', 'recurrent.linux-x64-gnu.node')
  // A build from source wins over the platform package.
  let r = resolveAddon(lookup(ubuntu20, { require: req, exists: (p) => p === local }))
  t.deepEqual(r.ok && r.from, local)
  // Without it, the platform package.
  r = resolveAddon(lookup(ubuntu20, { require: req }))
  t.deepEqual(r.ok && r.from, 'recurrent-nn-linux-x64-gnu')
  // The override folder is the only place looked at when set, and its absence is an error.
  r = resolveAddon(lookup(ubuntu20, { require: req, exists: (p) => p === local, overrideDir: '/elsewhere' }))
  t.false(r.ok)
  t.regex(r.ok ? '' : r.message, /RECURRENT_NATIVE_DIR is set to \/elsewhere, which has no recurrent\.linux-x64-gnu\.node/)
  t.deepEqual(loaded, [local, 'recurrent-nn-linux-x64-gnu'])
})

test('a binary the system refuses is reported with its path and the loader’s reason', (t) => {
  const local = join('/pkg', 'native', 'recurrent.linux-x64-gnu.node')
  const r = resolveAddon(
    lookup(ubuntu20, {
      exists: (p) => p === local,
      require: () => {
        throw new Error('/lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.34` not found')
      },
    }),
  )
  t.false(r.ok)
  t.regex(r.ok ? '' : r.message, /cannot load the native addon \/pkg\/native\/recurrent\.linux-x64-gnu\.node: .*GLIBC_2\.34/)
})

test('importing the package without an addon throws NativeAddonError with the message', (t) => {
  // A copy of the compiled package with an empty native folder named by RECURRENT_NATIVE_DIR:
  // the import must fail with the class and the text, not with a napi or module error.
  const dir = mkdtempSync(join(tmpdir(), 'recurrent-platform-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  mkdirSync(join(dir, 'empty'))
  writeFileSync(join(dir, 'probe.mjs'), [
    `try { await import(${JSON.stringify(join(root, 'index.ts'))}) ; console.log('loaded') }`,
    `catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })) }`,
  ].join('\n'))
  const r = spawnSync(process.execPath, ['--import', '@oxc-node/core/register', join(dir, 'probe.mjs')], {
    cwd: root,
    env: { ...process.env, RECURRENT_NATIVE_DIR: join(dir, 'empty') },
    encoding: 'utf8',
  })
  t.is(r.status, 0, r.stderr)
  const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { name?: string; code?: string; message?: string }
  t.is(out.name, 'NativeAddonError')
  t.is(out.code, 'ERR_NATIVE_ADDON')
  t.regex(out.message ?? '', /RECURRENT_NATIVE_DIR is set to .*empty, which has no recurrent\.linux-x64-gnu\.node/)
})
