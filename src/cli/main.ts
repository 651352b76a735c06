/**
 * The `recurrent` command line: `train-char` and `sample` (a character-level language model),
 * `train-seq2seq` and `translate` (an encoder-decoder on `source<TAB>target` pairs),
 * `train-caption` and `caption` (an image captioner).
 *
 * Every failure ends as ONE line on stderr, `recurrent: <what went wrong>`, and a non-zero exit
 * status (2 for a bad command line, 1 otherwise, 130 when interrupted); `--debug` adds the stack.
 */

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { RecurrentError } from '../errors.js'
import { CliError, UsageError } from './args.js'
import { packageRoot } from '../platform.js'
import { oneLine } from './common.js'
import { sampleCommand } from './sample.js'
import { trainCharCommand } from './train-char.js'
import { trainSeq2SeqCommand } from './train-seq2seq.js'
import { translateCommand } from './translate.js'
import { trainCaptionCommand } from './train-caption.js'
import { captionCommand } from './caption.js'

export const MAIN_HELP = `Usage: recurrent <command> [flags]

Commands:
  train-char   train a character-level LSTM/GRU language model on a text file (default: the
               bundled KJV New Testament), with progress, validation bits/char, checkpoints,
               a loss-curve SVG and a generated sample
  sample       generate text from a train-char checkpoint
  train-seq2seq
               train an encoder-decoder with attention on source<TAB>target pairs, with
               progress, validation exact match, checkpoints and a loss-curve SVG
  translate    read sources on stdin, write a train-seq2seq model's outputs on stdout
               (greedy or beam search)
  train-caption
               train an image captioner (CNN encoder, attending LSTM decoder) on a folder of
               images and filename<TAB>caption lines
  caption      caption image files with a train-caption checkpoint (and draw attention maps)

Run 'recurrent <command> --help' for the flags of a command.
  recurrent train-char --minutes 1 --out .demo-checkpoints
  recurrent sample --checkpoint .demo-checkpoints --prime "And he said" --length 400
  recurrent train-seq2seq --pairs pairs.tsv --minutes 5 --out ./s2s
  echo "123+456" | recurrent translate --checkpoint ./s2s --beam 4
  recurrent train-caption --images imgs/ --captions imgs/captions.tsv --minutes 5 --out ./cap
  recurrent caption --checkpoint ./cap --attention-map maps/ imgs/0001.png
`

function version(): string {
  try {
    return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown'
  } catch {
    return 'unknown'
  }
}

/** The one-line message of an error, as printed after `recurrent: `. */
export function errorLine(e: unknown, cmd: string | null): string {
  if (e instanceof UsageError) return `${oneLine(e.message)} (see 'recurrent ${cmd ? `${cmd} ` : ''}--help')`
  if (e instanceof CliError) return oneLine(e.message)
  if (e instanceof RecurrentError) return oneLine(`${e.name}: ${e.message}`)
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code
    return oneLine(typeof code === 'string' && e.message.includes(code) ? e.message : `${e.name}: ${e.message}`)
  }
  return oneLine(String(e))
}

/**
 * Runs the CLI on `argv` (without `node` and the script) and returns the exit status. Never
 * throws: errors are printed as one line on stderr.
 */
export async function main(args: readonly string[] = process.argv.slice(2)): Promise<number> {
  const debug = args.includes('--debug')
  // `--debug` may also come before the command.
  const argv = args[0] === '--debug' ? [...args.slice(1), '--debug'] : args
  const cmd = argv[0] !== undefined && !argv[0].startsWith('-') ? argv[0] : null
  const fail = (e: unknown): number => {
    process.stderr.write(`recurrent: ${errorLine(e, cmd)}\n`)
    if (debug && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`)
    return e instanceof UsageError ? 2 : 1
  }
  try {
    if (cmd === null) {
      if (argv.includes('--version') || argv.includes('-v')) {
        process.stdout.write(`recurrent ${version()}\n`)
        return 0
      }
      if (argv.length === 0 || argv.includes('--help') || argv.includes('-h')) {
        process.stdout.write(MAIN_HELP)
        return 0
      }
      throw new UsageError(`unknown flag '${argv[0]}': give a command first (train-char, sample, train-seq2seq, translate, train-caption, caption)`)
    }
    const rest = argv.slice(1)
    switch (cmd) {
      case 'train-char':
        return await trainCharCommand(rest, { out: process.stdout, tty: process.stdout.isTTY === true, columns: process.stdout.columns || 100 })
      case 'sample':
        return await sampleCommand(rest, process.stdout)
      case 'train-seq2seq':
        return await trainSeq2SeqCommand(rest, { out: process.stdout, tty: process.stdout.isTTY === true, columns: process.stdout.columns || 100 })
      case 'translate':
        return await translateCommand(rest, { input: process.stdin, inputIsTTY: process.stdin.isTTY === true, out: process.stdout })
      case 'train-caption':
        return await trainCaptionCommand(rest, { out: process.stdout, tty: process.stdout.isTTY === true, columns: process.stdout.columns || 100 })
      case 'caption':
        return await captionCommand(rest, process.stdout)
      case 'help': {
        const sub = rest[0]
        if (sub === 'train-char' || sub === 'sample' || sub === 'train-seq2seq' || sub === 'translate' || sub === 'train-caption' || sub === 'caption') return await main([sub, '--help'])
        process.stdout.write(MAIN_HELP)
        return 0
      }
      default:
        throw new UsageError(`unknown command '${cmd}' (commands: train-char, sample, train-seq2seq, translate, train-caption, caption)`)
    }
  } catch (e) {
    return fail(e)
  }
}

/** Installs the last-resort handlers and runs {@link main}, setting the exit status. */
export async function run(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const debug = argv.includes('--debug')
  const last = (e: unknown) => {
    process.stderr.write(`recurrent: ${errorLine(e, null)}\n`)
    if (debug && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`)
    process.exit(1)
  }
  process.on('uncaughtException', last)
  process.on('unhandledRejection', last)
  // `recurrent sample | head`: a closed pipe ends the program quietly.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0)
    last(e)
  })
  process.exitCode = await main(argv)
}

// Run when this file is the entry point (`node --import @oxc-node/core/register src/cli/main.ts`);
// bin/recurrent.js imports it and calls run().
const entry = process.argv[1]
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) void run()
