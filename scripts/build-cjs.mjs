#!/usr/bin/env node
// The CommonJS build (dist/cjs/), for `require('recurrent-nn')` on every Node 20 (before
// 20.19, require() cannot load ES modules): index.ts bundled into one CommonJS file by esbuild,
// the declarations of the ESM build copied beside it, and a package.json that marks the folder
// CommonJS so that Node and TypeScript read both as such. Runs after `tsc` (npm run build:ts).
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const dist = join(root, 'dist')
const out = join(dist, 'cjs')
if (!existsSync(join(dist, 'index.d.ts'))) {
  console.error('build-cjs: dist/index.d.ts is missing: run tsc -p tsconfig.json first')
  process.exit(1)
}
rmSync(out, { recursive: true, force: true })

await build({
  entryPoints: [join(root, 'index.ts')],
  outfile: join(out, 'index.js'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // Node built-ins only: the package has no runtime dependencies, and the native addon is
  // loaded by path at run time (src/platform.ts).
  packages: 'external',
  // The sources find their own folder through import.meta.url; in the bundle that is the
  // bundle's file.
  define: { 'import.meta.url': '__recurrentModuleUrl' },
  banner: { js: `'use strict';\nconst __recurrentModuleUrl = require('node:url').pathToFileURL(__filename).href;` },
  sourcemap: true,
  sourcesContent: true,
  legalComments: 'none',
  logLevel: 'warning',
})
writeFileSync(join(out, 'package.json'), `${JSON.stringify({ type: 'commonjs' }, null, 2)}\n`)

// Declarations: the same files as the ESM build; under dist/cjs/ they are read as CommonJS.
function copyDeclarations(from, to) {
  for (const name of readdirSync(from)) {
    const src = join(from, name)
    if (src === out || name === 'examples' || name === 'cli') continue
    if (statSync(src).isDirectory()) copyDeclarations(src, join(to, name))
    else if (name.endsWith('.d.ts')) {
      mkdirSync(to, { recursive: true })
      cpSync(src, join(to, name))
    }
  }
}
copyDeclarations(dist, out)
// The native addon's generated types, where the declarations of src/native.ts point
// (`../native/index.cjs` from dist/src and from dist/cjs/src).
for (const dir of [join(dist, 'native'), join(out, 'native')]) {
  mkdirSync(dir, { recursive: true })
  cpSync(join(root, 'native', 'index.d.cts'), join(dir, 'index.d.cts'))
}
console.log(`build-cjs: ${relative(root, join(out, 'index.js'))} and its declarations`)
