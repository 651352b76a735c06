#!/usr/bin/env node
// Packs what a release publishes, into .tmp/pack/: the main package recurrent-nn (JavaScript,
// types, data, examples; no binary, no scripts, no dev dependencies) and one package per
// platform, recurrent-nn-<key>, holding that platform's addon with the os/cpu/libc fields
// that make npm install only the package that fits. The main package lists the platform
// packages packed in the same run as optional dependencies, at its own version.
//
//   node scripts/pack-release.mjs [key ...]     (default: every key with a built binary)
//
// Binaries come from .tmp/platforms/<key>/recurrent.<key>.node (scripts/build-platforms.sh).
// dist/ must be built (npm run build:ts); the repository's own `npm pack` is the from-source
// tarball instead (it carries native/recurrent.<key>.node of the machine that built it).
import { execFileSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const out = join(root, '.tmp', 'pack')
const stage = join(out, 'stage')
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))

if (!existsSync(join(root, 'dist', 'cjs', 'index.js'))) {
  console.error('pack-release: dist/ is not built: run npm run build:ts first')
  process.exit(1)
}
// The target table is src/platform.ts's, from the compiled package (one source of truth).
const { PLATFORM_TARGETS, platformPackageName, binaryFileName } = await import(join(root, 'dist', 'src', 'platform.js'))
const binaryOf = (key) => join(root, '.tmp', 'platforms', key, binaryFileName(key))
const asked = process.argv.slice(2)
for (const k of asked) {
  if (!PLATFORM_TARGETS.some((t) => t.key === k)) {
    console.error(`pack-release: unknown platform '${k}'; known: ${PLATFORM_TARGETS.map((t) => t.key).join(', ')}`)
    process.exit(2)
  }
}
const targets = PLATFORM_TARGETS.filter((t) => (asked.length ? asked.includes(t.key) : existsSync(binaryOf(t.key))))
const missing = targets.filter((t) => !existsSync(binaryOf(t.key)))
if (missing.length) {
  console.error(`pack-release: not built: ${missing.map((t) => binaryOf(t.key)).join(', ')} (scripts/build-platforms.sh ${missing.map((t) => t.key).join(' ')})`)
  process.exit(1)
}
if (targets.length === 0) {
  console.error('pack-release: no platform binary is built (scripts/build-platforms.sh)')
  process.exit(1)
}

rmSync(out, { recursive: true, force: true })
mkdirSync(stage, { recursive: true })
const pack = (dir) => {
  const res = JSON.parse(execFileSync(npm, ['pack', '--json', '--ignore-scripts', '--pack-destination', out], { cwd: dir, encoding: 'utf8', shell: process.platform === 'win32' }))
  return res[0]
}
const packed = []

// 1. One package per platform.
for (const t of targets) {
  const name = platformPackageName(t.key)
  const dir = join(stage, name)
  mkdirSync(dir, { recursive: true })
  const file = binaryFileName(t.key)
  copyFileSync(binaryOf(t.key), join(dir, file))
  const manifest = {
    name,
    version: pkg.version,
    description: `The ${t.key} native addon of ${pkg.name} (${t.rustTarget}${t.minGlibc ? `, glibc >= ${t.minGlibc}` : ''}). Install ${pkg.name}, not this.`,
    license: pkg.license,
    main: file,
    files: [file],
    os: [t.platform],
    cpu: [t.arch],
    ...(t.libc ? { libc: [t.libc] } : {}),
    engines: pkg.engines,
  }
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`)
  writeFileSync(join(dir, 'README.md'), `# ${name}\n\nThe prebuilt native addon of [${pkg.name}](https://www.npmjs.com/package/${pkg.name}) for ${t.key} (${t.rustTarget}). It is installed by \`npm install ${pkg.name}\` on that platform; do not depend on it directly.\n`)
  packed.push(pack(dir))
}

// 2. The main package: the files the repository's `npm pack` takes, less any binary.
const listed = JSON.parse(execFileSync(npm, ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8', shell: process.platform === 'win32' }))[0].files.map((f) => f.path)
const main = join(stage, pkg.name)
for (const p of listed) {
  if (p.endsWith('.node') || p === 'package.json') continue
  mkdirSync(dirname(join(main, p)), { recursive: true })
  copyFileSync(join(root, p), join(main, p))
}
const manifest = { ...pkg }
// Nothing runs at install: no scripts at all (prepack built what is packed), no dev tooling.
delete manifest.scripts
delete manifest.devDependencies
delete manifest.napi
manifest.files = manifest.files.filter((f) => !f.endsWith('.node'))
manifest.optionalDependencies = Object.fromEntries(targets.map((t) => [platformPackageName(t.key), pkg.version]))
writeFileSync(join(main, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`)
packed.push(pack(main))

console.log(`pack-release: ${packed.length} packages in ${out}`)
for (const p of packed) console.log(`  ${p.filename.padEnd(40)} ${(statSync(join(out, p.filename)).size / 1e6).toFixed(2).padStart(7)} MB  ${p.entryCount} files`)
const absent = PLATFORM_TARGETS.filter((t) => !targets.includes(t))
if (absent.length) console.log(`  (not in this pack: ${absent.map((t) => t.key).join(', ')}; a release carries every platform)`)
