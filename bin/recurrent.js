#!/usr/bin/env node
// The `recurrent` command (package.json "bin"). The CLI itself is TypeScript in src/cli/,
// compiled to dist/ by `npm run build`; errors end as one line on stderr.
import { existsSync } from 'node:fs'

const main = new URL('../dist/src/cli/main.js', import.meta.url)
if (!existsSync(main)) {
  process.stderr.write("recurrent: not built: run 'npm run build' first (dist/src/cli/main.js is missing)\n")
  process.exit(1)
}
try {
  const cli = await import(main.href)
  await cli.run(process.argv.slice(2))
} catch (e) {
  // Only failures to load the CLI or the native addon get here; run() reports its own errors.
  const msg = String(e instanceof Error ? e.message : e).split('\n').find((l) => l.trim()) ?? String(e)
  process.stderr.write(`recurrent: cannot start: ${msg.trim()}\n`)
  if (process.argv.includes('--debug') && e instanceof Error) process.stderr.write(`${e.stack}\n`)
  process.exit(1)
}
