/**
 * Which prebuilt native addon fits this machine, where it is found, and the error for a machine
 * that none fits.
 *
 * The published `recurrent-nn` holds no binary: each supported platform has a package of its
 * own (`recurrent-nn-<key>`, e.g. `recurrent-nn-linux-x64-gnu`) listed as an optional
 * dependency, with `os`, `cpu` and `libc` fields so that npm installs only the one that fits.
 * A build from source writes `native/recurrent.<key>.node` inside the package, which is found
 * first. The table below must list the same Rust targets as `napi.targets` in package.json
 * (a spec checks it).
 */

import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The npm name of this package; its per-platform packages are `<name>-<key>`. */
export const PACKAGE_NAME = 'recurrent-nn'

/** One platform with a prebuilt addon. */
export interface PlatformTarget {
  /** napi-rs's name of the platform, also the suffix of its package: `linux-x64-gnu`. */
  readonly key: string
  /** The Rust target triple it is built for. */
  readonly rustTarget: string
  /** `process.platform` of the machines it runs on. */
  readonly platform: string
  /** `process.arch` of the machines it runs on. */
  readonly arch: string
  /** The C library of the machines it runs on (Linux only). */
  readonly libc?: 'glibc' | 'musl'
  /** The oldest glibc it runs on (glibc targets only). */
  readonly minGlibc?: string
}

/** Every platform a prebuilt addon is published for. */
export const PLATFORM_TARGETS: readonly PlatformTarget[] = [
  { key: 'linux-x64-gnu', rustTarget: 'x86_64-unknown-linux-gnu', platform: 'linux', arch: 'x64', libc: 'glibc', minGlibc: '2.17' },
  { key: 'linux-arm64-gnu', rustTarget: 'aarch64-unknown-linux-gnu', platform: 'linux', arch: 'arm64', libc: 'glibc', minGlibc: '2.17' },
  { key: 'linux-x64-musl', rustTarget: 'x86_64-unknown-linux-musl', platform: 'linux', arch: 'x64', libc: 'musl' },
  { key: 'linux-arm64-musl', rustTarget: 'aarch64-unknown-linux-musl', platform: 'linux', arch: 'arm64', libc: 'musl' },
  { key: 'win32-x64-gnu', rustTarget: 'x86_64-pc-windows-gnu', platform: 'win32', arch: 'x64' },
]

/** What the loader needs to know of the machine it runs on. */
export interface HostPlatform {
  /** `process.platform`. */
  readonly platform: string
  /** `process.arch`. */
  readonly arch: string
  /** The C library on Linux (`null` elsewhere, or when it cannot be told). */
  readonly libc: 'glibc' | 'musl' | null
  /** The running glibc's version, e.g. `'2.31'` (`null` off glibc). */
  readonly glibcVersion: string | null
}

/** This machine, as {@link HostPlatform}. */
export function detectHost(): HostPlatform {
  const { platform, arch } = process
  if (platform !== 'linux') return { platform, arch, libc: null, glibcVersion: null }
  // Node's diagnostic report names the glibc it runs on; a musl Node has none there.
  let glibcVersion: string | null = null
  let libc: HostPlatform['libc'] = null
  try {
    const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header
    glibcVersion = header?.glibcVersionRuntime ?? null
    libc = glibcVersion ? 'glibc' : 'musl'
  } catch {
    libc = null
  }
  if (libc !== 'glibc') {
    // Without a report (or without glibc in it), the dynamic loader's name settles it.
    try {
      if (readFileSync('/usr/bin/ldd', 'utf8').includes('musl')) libc = 'musl'
    } catch {
      // no ldd: keep what the report said
    }
  }
  return { platform, arch, libc, glibcVersion }
}

/** Compares dotted versions numerically: negative when `a` is older than `b`. */
function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number)
  const pb = b.split('.').map(Number)
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0)
    if (d !== 0) return d
  }
  return 0
}

/** The prebuilt target for `host`, or `undefined` when none fits it. */
export function targetFor(host: HostPlatform): PlatformTarget | undefined {
  return PLATFORM_TARGETS.find(
    (t) =>
      t.platform === host.platform &&
      t.arch === host.arch &&
      (t.libc === undefined || t.libc === host.libc) &&
      (t.minGlibc === undefined || host.glibcVersion === null || compareVersions(host.glibcVersion, t.minGlibc) >= 0),
  )
}

/** The npm package that holds the addon of `key`. */
export function platformPackageName(key: string): string {
  return `${PACKAGE_NAME}-${key}`
}

/** The file name of the addon of `key`. */
export function binaryFileName(key: string): string {
  return `recurrent.${key}.node`
}

/** `linux x64 (glibc 2.31)`, `darwin arm64`, `linux x64 (musl)`. */
export function describeHost(host: HostPlatform): string {
  const libc = host.libc === 'glibc' ? ` (glibc ${host.glibcVersion ?? 'unknown version'})` : host.libc === 'musl' ? ' (musl)' : ''
  return `${host.platform} ${host.arch}${libc}`
}

const BUILD_FROM_SOURCE = [
  'To build from source (needs Rust 1.88+ from rustup, Node.js 20+ and a C linker):',
  `  in a clone of the ${PACKAGE_NAME} repository: npm ci && npm run build && npm pack`,
  `  then in your project: npm install /path/to/${PACKAGE_NAME}-<version>.tgz`,
  '  (the tarball then carries native/recurrent.<platform>.node, built for this machine).',
].join('\n')

/** The message for a machine that no prebuilt addon fits. */
export function unsupportedPlatformMessage(host: HostPlatform): string {
  const supported = PLATFORM_TARGETS.map((t) => `  ${t.key}${t.minGlibc ? ` (glibc >= ${t.minGlibc})` : ''}`).join('\n')
  const why =
    host.platform === 'darwin'
      ? ' (macOS binaries need Apple’s SDK, which this project’s build machines lack)'
      : host.libc === 'glibc' && PLATFORM_TARGETS.some((t) => t.platform === host.platform && t.arch === host.arch && t.libc === 'glibc')
        ? ' (its glibc is older than the prebuilt addon needs)'
        : ''
  return [
    `${PACKAGE_NAME}: no prebuilt native addon for this platform: ${describeHost(host)}${why}.`,
    'Prebuilt addons exist for:',
    supported,
    BUILD_FROM_SOURCE,
  ].join('\n')
}

/** The message for a supported platform whose package is not installed. */
export function missingPackageMessage(target: PlatformTarget, version: string | null): string {
  const pkg = platformPackageName(target.key)
  const at = version ? `@${version}` : ''
  return [
    `${PACKAGE_NAME}: the native addon for ${target.key} is not installed: the optional dependency ${pkg} is missing.`,
    'npm skips optional dependencies under --omit=optional (or --no-optional), and a lockfile made on another platform may lack it.',
    `Install it with: npm install ${pkg}${at}`,
    BUILD_FROM_SOURCE,
  ].join('\n')
}

/** The root of this package (the folder of its package.json), found upwards from `from`. */
export function findPackageRoot(from: string): string | null {
  let dir = from
  for (let i = 0; i < 8; i++) {
    const pj = join(dir, 'package.json')
    if (existsSync(pj)) {
      try {
        if ((JSON.parse(readFileSync(pj, 'utf8')) as { name?: string }).name === PACKAGE_NAME) return dir
      } catch {
        // not ours (or unreadable): keep looking
      }
    }
    const up = dirname(dir)
    if (up === dir) break
    dir = up
  }
  return null
}

/** This module's folder (in the ESM build; the CommonJS bundle defines `import.meta.url` too). */
export function moduleDir(): string {
  return dirname(fileURLToPath(import.meta.url))
}

/** The root of the installed (or checked-out) package. */
export function packageRoot(): string {
  const root = findPackageRoot(moduleDir())
  if (root === null) throw new Error(`${PACKAGE_NAME}: cannot find its own package.json above ${moduleDir()}`)
  return root
}

/** The package's version, from its package.json (`null` when unreadable). */
export function packageVersion(root: string): string | null {
  try {
    return (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version?: string }).version ?? null
  } catch {
    return null
  }
}

/** Where {@link resolveAddon} looks, and how it loads: injectable so that specs can play other machines. */
export interface AddonLookup {
  readonly host: HostPlatform
  /** The package's root folder. */
  readonly root: string
  /** A folder holding `recurrent.<key>.node` to load instead (the `RECURRENT_NATIVE_DIR` variable). */
  readonly overrideDir?: string | undefined
  /** Loads a module by path or package name (Node's `require`). */
  readonly require: (id: string) => unknown
  readonly exists: (path: string) => boolean
}

/** The outcome of {@link resolveAddon}: the module and where it came from, or the reason there is none. */
export type AddonResolution = { ok: true; addon: unknown; from: string } | { ok: false; message: string; cause?: unknown }

function isNotFound(e: unknown, id: string): boolean {
  return (e as NodeJS.ErrnoException | null)?.code === 'MODULE_NOT_FOUND' && String((e as Error).message).includes(id)
}

/**
 * Finds and loads the addon: a folder named by `RECURRENT_NATIVE_DIR`, then the package's own
 * `native/` (a build from source), then the per-platform package. Never throws: the caller
 * turns a failure into its error.
 */
export function resolveAddon(lookup: AddonLookup): AddonResolution {
  const target = targetFor(lookup.host)
  const key = target?.key ?? `${lookup.host.platform}-${lookup.host.arch}${lookup.host.libc === 'musl' ? '-musl' : lookup.host.platform === 'linux' ? '-gnu' : ''}`
  const file = binaryFileName(key)
  const tryLoad = (path: string): AddonResolution | null => {
    if (!lookup.exists(path)) return null
    try {
      return { ok: true, addon: lookup.require(path), from: path }
    } catch (e) {
      return { ok: false, message: `${PACKAGE_NAME}: cannot load the native addon ${path}: ${(e as Error).message}`, cause: e }
    }
  }
  if (lookup.overrideDir) {
    const path = join(lookup.overrideDir, file)
    return (
      tryLoad(path) ?? { ok: false, message: `${PACKAGE_NAME}: RECURRENT_NATIVE_DIR is set to ${lookup.overrideDir}, which has no ${file}` }
    )
  }
  const local = tryLoad(join(lookup.root, 'native', file))
  if (local) return local
  if (!target) return { ok: false, message: unsupportedPlatformMessage(lookup.host) }
  const pkg = platformPackageName(target.key)
  try {
    return { ok: true, addon: lookup.require(pkg), from: pkg }
  } catch (e) {
    if (isNotFound(e, pkg)) return { ok: false, message: missingPackageMessage(target, packageVersion(lookup.root)), cause: e }
    return { ok: false, message: `${PACKAGE_NAME}: cannot load the native addon from ${pkg}: ${(e as Error).message}`, cause: e }
  }
}
