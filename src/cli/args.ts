/**
 * A small command-line flag parser for the `recurrent` CLI: `--name value`, `--name=value`,
 * boolean switches, typed and range-checked values, and generated `--help` text. Every problem
 * is a {@link UsageError} with a one-line message.
 */

import { closestName } from '../validate.js'

/** A bad command line: unknown flag, missing or malformed value. Exit status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UsageError'
  }
}

/** A failure the user can fix (missing file, bad checkpoint): one line, exit status 1. */
export class CliError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'CliError'
  }
}

export type FlagType = 'string' | 'int' | 'number' | 'bool'

/** One flag of a command. */
export interface FlagSpec {
  /** The long name, without the dashes. */
  name: string
  type: FlagType
  /** What `--help` prints. */
  help: string
  /** The default, shown in `--help` (omit for "none"). */
  default?: string | number | boolean
  /** How `--help` shows the value (default from the type). */
  metavar?: string
  /** Allowed values of a string flag. */
  choices?: readonly string[]
  /** Smallest allowed value of a number (inclusive). */
  min?: number
  /** Largest allowed value of a number (inclusive). */
  max?: number
  /** Smallest value, exclusive (for "positive" numbers). */
  above?: number
  /** A one-letter alias, e.g. `h`. */
  short?: string
}

export type FlagValue = string | number | boolean
export interface ParsedArgs {
  /** Every flag's value: given, or its default (flags without a default and not given are absent). */
  values: Record<string, FlagValue | undefined>
  /** The flags given on the command line. */
  given: Set<string>
  /** Arguments that are not flags. */
  positional: string[]
}

function describe(spec: FlagSpec): string {
  if (spec.metavar) return spec.metavar
  if (spec.choices) return spec.choices.join('|')
  return spec.type === 'int' ? 'N' : spec.type === 'number' ? 'X' : 'S'
}

function convert(cmd: string, spec: FlagSpec, raw: string): FlagValue {
  const flag = `--${spec.name}`
  switch (spec.type) {
    case 'bool': {
      if (['true', '1', 'yes', 'on'].includes(raw)) return true
      if (['false', '0', 'no', 'off'].includes(raw)) return false
      throw new UsageError(`${flag} takes no value or true/false, got '${raw}'`)
    }
    case 'string':
      if (spec.choices && !spec.choices.includes(raw)) {
        throw new UsageError(`${flag} must be one of ${spec.choices.join(', ')}, got '${raw}'`)
      }
      return raw
    case 'int':
    case 'number': {
      const v = raw.trim() === '' ? NaN : Number(raw)
      if (!Number.isFinite(v)) throw new UsageError(`${flag} must be a number, got '${raw}'`)
      if (spec.type === 'int' && !Number.isInteger(v)) throw new UsageError(`${flag} must be an integer, got '${raw}'`)
      if (spec.min !== undefined && v < spec.min) throw new UsageError(`${flag} must be at least ${spec.min}, got ${raw}`)
      if (spec.max !== undefined && v > spec.max) throw new UsageError(`${flag} must be at most ${spec.max}, got ${raw}`)
      if (spec.above !== undefined && !(v > spec.above)) throw new UsageError(`${flag} must be greater than ${spec.above}, got ${raw}`)
      return v
    }
  }
  void cmd
  throw new UsageError(`${flag}: unknown type`)
}

/**
 * Parses `argv` against `specs`. `--help`/`-h` and `--debug` are always known (booleans).
 * Throws a {@link UsageError} for an unknown flag, a missing value, a bad value, or a stray
 * positional argument (when `maxPositional` is 0).
 */
export function parseArgs(cmd: string, argv: readonly string[], specs: readonly FlagSpec[], maxPositional = 0): ParsedArgs {
  const all: FlagSpec[] = [
    ...specs,
    { name: 'help', type: 'bool', short: 'h', help: 'show this help and exit' },
    { name: 'debug', type: 'bool', help: 'show stack traces on errors' },
  ]
  const byName = new Map(all.map((s) => [s.name, s]))
  const byShort = new Map(all.filter((s) => s.short).map((s) => [s.short!, s]))
  const values: Record<string, FlagValue | undefined> = {}
  for (const s of all) if (s.default !== undefined) values[s.name] = s.default
  const given = new Set<string>()
  const positional: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--') {
      positional.push(...argv.slice(i + 1))
      break
    }
    let spec: FlagSpec | undefined
    let inline: string | undefined
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=')
      const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2)
      inline = eq >= 0 ? arg.slice(eq + 1) : undefined
      spec = byName.get(name)
      if (!spec) {
        const near = closestName(name, [...byName.keys()], { maxDistance: 2, prefixes: false })
        throw new UsageError(`unknown flag '--${name}' for '${cmd}'${near ? ` (did you mean --${near}?)` : ''}`)
      }
    } else if (arg.startsWith('-') && arg.length === 2 && !/[0-9.]/.test(arg[1]!)) {
      spec = byShort.get(arg[1]!)
      if (!spec) throw new UsageError(`unknown flag '${arg}' for '${cmd}'`)
    } else {
      positional.push(arg)
      continue
    }
    let raw: string
    if (spec.type === 'bool') {
      raw = inline ?? 'true'
    } else if (inline !== undefined) {
      raw = inline
    } else {
      const next = argv[i + 1]
      if (next === undefined || (next.startsWith('--') && next.length > 2)) throw new UsageError(`--${spec.name} needs a value (${describe(spec)})`)
      raw = next
      i++
    }
    if (given.has(spec.name)) throw new UsageError(`--${spec.name} is given twice`)
    values[spec.name] = convert(cmd, spec, raw)
    given.add(spec.name)
  }
  if (positional.length > maxPositional && !given.has('help')) {
    throw new UsageError(`unexpected argument '${positional[maxPositional]}' for '${cmd}' (flags start with --)`)
  }
  return { values, given, positional }
}

/** The `--help` text: usage line, description, and one line per flag. */
export function helpText(usage: string, description: string, specs: readonly FlagSpec[]): string {
  const rows = [
    ...specs,
    { name: 'debug', type: 'bool' as const, help: 'show stack traces on errors' },
    { name: 'help', type: 'bool' as const, short: 'h', help: 'show this help and exit' },
  ].map((s) => {
    const left = `  ${s.short ? `-${s.short}, ` : ''}--${s.name}${s.type === 'bool' ? '' : ` ${describe(s)}`}`
    const def = s.default !== undefined && s.default !== '' && s.type !== 'bool' ? ` (default: ${s.default})` : ''
    return [left, `${s.help}${def}`] as const
  })
  const width = Math.min(30, Math.max(...rows.map(([l]) => l.length)) + 2)
  const lines = rows.map(([l, r]) => {
    const wrapped = wrap(r, Math.max(30, TOTAL_WIDTH - width)).join(`\n${' '.repeat(width)}`)
    return l.length + 2 > width ? `${l}\n${' '.repeat(width)}${wrapped}` : `${l.padEnd(width)}${wrapped}`
  })
  return `${usage}\n\n${description}\n\nFlags:\n${lines.join('\n')}\n`
}

const TOTAL_WIDTH = 100

/** Splits `text` into lines of at most `width` characters, at spaces. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = []
  let line = ''
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line)
      line = word
    } else {
      line = line ? `${line} ${word}` : word
    }
  }
  if (line) lines.push(line)
  return lines
}
