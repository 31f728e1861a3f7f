/**
 * Where the API key is cut out of everything a server sends before it is kept: the text of an error body
 * or an SSE error frame, a header value quoted in a message, a request id. A server (or a proxy in front
 * of it) may echo the `Authorization` header whole, in another case, URL-encoded, HTML-escaped or in part;
 * one function removes all of these, so that no call site has to know which forms exist.
 *
 * What counts as an echo: any run of {@link RUN} or more consecutive characters of the key (the key
 * itself included), compared case-insensitively, in the text as sent, with `%XX` escapes decoded (bytes
 * of any case, UTF-8 sequences included), or with HTML character references decoded (`&#65;`, `&#x41;`,
 * `&lowbar;`, `&amp;`, ...), up to two levels deep (`%2541`, `&amp;#65;`). Each echo, with the escapes
 * it was written in, becomes `<redacted>`. A key shorter than `RUN` is looked for whole; one shorter than
 * `MIN_KEY` not at all.
 *
 * Its length is the decoders of those escapes, written here so that each form is matched exactly as the
 * scrubber finds it (a general HTML decoder would not say where in the text a decoded character came from).
 *
 * The key's runs are hashed once per key (a rolling hash of each of its `RUN`-character windows), so a
 * text is scanned in one pass per decoding level, without building a string per position.
 *
 * Written here because no package does this: redaction libraries find secrets by their shape (`sk-…`,
 * high-entropy strings), not the fragments and encodings of one secret that is known.
 */

/** The shortest run of the key's characters that counts as an echo of it. */
const RUN = 8

/** Keys shorter than this are not looked for: they would match ordinary words. */
const MIN_KEY = 4

const REDACTED = "<redacted>"

/** What a text longer than this is clipped to, once its echoes are cut out. */
const MAX_MESSAGE = 1000

/** The longest request id kept. */
const MAX_REQUEST_ID = 128

/** Visible ASCII: a request id with spaces, control characters or anything else is not one a support desk issues. */
const REQUEST_ID = /^[\x21-\x7e]+$/

/** How many times a text is decoded: `%2541` and `&amp;#65;` need two. */
const LEVELS = 2

/** The most characters one decoded character of the key can take in a text, at two levels (`%25F0%259F...`). */
const MAX_ENCODED_WIDTH = 24

/** The hash's multiplier: FNV's prime, odd, so that no character's bits are lost. */
const BASE = 0x01000193

// The named character references whose characters can appear in a key (HTML5 names them
// case-sensitively; here any case is read, which only ever removes more).
const ENTITIES: Readonly<Record<string, string>> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: "\"",
  apos: "'",
  excl: "!",
  num: "#",
  dollar: "$",
  percnt: "%",
  lpar: "(",
  rpar: ")",
  ast: "*",
  midast: "*",
  plus: "+",
  comma: ",",
  period: ".",
  sol: "/",
  colon: ":",
  semi: ";",
  equals: "=",
  quest: "?",
  commat: "@",
  lsqb: "[",
  lbrack: "[",
  bsol: "\\",
  rsqb: "]",
  rbrack: "]",
  hat: "^",
  lowbar: "_",
  underbar: "_",
  grave: "`",
  lcub: "{",
  lbrace: "{",
  verbar: "|",
  vert: "|",
  rcub: "}",
  rbrace: "}",
  nbsp: "\u00a0",
  newline: "\n",
  tab: "\t"
}

/**
 * A text after some decoding: each of its code units came from `[starts[i], ends[i])` of the text as sent.
 * The text as sent has no maps.
 */
interface Level {
  readonly text: string
  readonly starts: Int32Array | undefined
  readonly ends: Int32Array | undefined
}

const hexValue = (code: number): number =>
  code >= 48 && code <= 57
    ? code - 48
    : code >= 97 && code <= 102
    ? code - 87
    : code >= 65 && code <= 70
    ? code - 55
    : -1

/** The byte of `%XX` at `i`, or -1. */
const byteAt = (text: string, i: number): number => {
  if (text.charCodeAt(i) !== 37 || i + 2 >= text.length) return -1
  const high = hexValue(text.charCodeAt(i + 1))
  const low = hexValue(text.charCodeAt(i + 2))
  return high < 0 || low < 0 ? -1 : high * 16 + low
}

const validCodePoint = (cp: number): boolean => cp > 0 && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff)

/**
 * The code point of the escape decoded last, set by `percentAt` and `entityAt` (which return where the escape
 * ends, or -1): a decoder that allocates nothing per escape.
 */
let decoded = 0

/** `%XX` at `i`, with the `%XX` continuation bytes of a UTF-8 sequence that follow it; a lone byte as Latin-1. */
const percentAt = (text: string, i: number): number => {
  const lead = byteAt(text, i)
  if (lead < 0) return -1
  decoded = lead
  const length = lead >= 0xc2 && lead <= 0xdf
    ? 2
    : lead >= 0xe0 && lead <= 0xef
    ? 3
    : lead >= 0xf0 && lead <= 0xf4
    ? 4
    : 1
  if (length === 1) return i + 3
  let cp = lead & (length === 2 ? 0x1f : length === 3 ? 0x0f : 0x07)
  for (let k = 1; k < length; k++) {
    const next = byteAt(text, i + 3 * k)
    if (next < 0x80 || next > 0xbf) return i + 3
    cp = cp * 64 + (next & 0x3f)
  }
  if (cp < (length === 2 ? 0x80 : length === 3 ? 0x800 : 0x10000) || !validCodePoint(cp)) return i + 3
  decoded = cp
  return i + 3 * length
}

const isNameCode = (code: number): boolean =>
  (code >= 97 && code <= 122) || (code >= 65 && code <= 90) || (code >= 48 && code <= 57)

/** An HTML character reference at `i`: numeric (decimal or hex) with or without its `;`, named with it. */
const entityAt = (text: string, i: number): number => {
  let j = i + 1
  if (text.charCodeAt(j) === 35) {
    j++
    const hex = text.charCodeAt(j) === 120 || text.charCodeAt(j) === 88
    if (hex) j++
    const first = j
    let cp = 0
    while (j < text.length && j - first < (hex ? 7 : 8)) {
      const digit = hex ? hexValue(text.charCodeAt(j)) : text.charCodeAt(j) - 48
      if (digit < 0 || digit > (hex ? 15 : 9)) break
      cp = cp * (hex ? 16 : 10) + digit
      j++
    }
    if (j === first || !validCodePoint(cp)) return -1
    decoded = cp
    return text.charCodeAt(j) === 59 ? j + 1 : j
  }
  while (j < text.length && j - i <= 32 && isNameCode(text.charCodeAt(j))) j++
  if (j - i < 3 || text.charCodeAt(j) !== 59) return -1
  const name = text.slice(i + 1, j).toLowerCase()
  if (!Object.hasOwn(ENTITIES, name)) return -1
  decoded = ENTITIES[name]!.charCodeAt(0)
  return j + 1
}

/** The text of UTF-16 code units, a slice at a time (an argument list has a limit). */
const fromUnits = (units: Uint16Array): string => {
  let text = ""
  for (let k = 0; k < units.length; k += 8192) {
    text += String.fromCharCode.apply(null, units.subarray(k, k + 8192) as unknown as Array<number>)
  }
  return text
}

/** The level below `level`, with one layer of `%XX` and HTML escapes decoded; `undefined` if it has none. */
const decode = (level: Level): Level | undefined => {
  const text = level.text
  if (text.indexOf("%") < 0 && text.indexOf("&") < 0) return undefined
  // An escape is longer than what it stands for, so the decoded text is no longer than the text.
  const units = new Uint16Array(text.length)
  const starts = new Int32Array(text.length)
  const ends = new Int32Array(text.length)
  let length = 0
  let changed = false
  let i = 0
  while (i < text.length) {
    const code = text.charCodeAt(i)
    const end = code === 37 ? percentAt(text, i) : code === 38 ? entityAt(text, i) : -1
    if (end < 0) {
      units[length] = code
      starts[length] = level.starts === undefined ? i : level.starts[i]!
      ends[length] = level.ends === undefined ? i + 1 : level.ends[i]!
      length++
      i++
      continue
    }
    changed = true
    const start = level.starts === undefined ? i : level.starts[i]!
    const stop = level.ends === undefined ? end : level.ends[end - 1]!
    if (decoded > 0xffff) {
      units[length] = 0xd800 + ((decoded - 0x10000) >> 10)
      starts[length] = start
      ends[length] = stop
      length++
      units[length] = 0xdc00 + ((decoded - 0x10000) & 0x3ff)
    } else {
      units[length] = decoded
    }
    starts[length] = start
    ends[length] = stop
    length++
    i = end
  }
  if (!changed) return undefined
  return {
    text: fromUnits(units.subarray(0, length)),
    starts: starts.subarray(0, length),
    ends: ends.subarray(0, length)
  }
}

/** Lower case, one code unit for one (a character whose lower case is longer is left as it is). */
const fold = (text: string): string => {
  const lower = text.toLowerCase()
  if (lower.length === text.length) return lower
  let out = ""
  for (const unit of text.split("")) {
    const l = unit.toLowerCase()
    out += l.length === 1 ? l : unit
  }
  return out
}

/**
 * Hashes are kept to 30 bits, so that they stay small integers (no number is allocated per character); every
 * step is exact modulo 2^30 as modulo 2^32.
 */
const MASK = 0x3fffffff

/** The hash of `text[from, from + length)`; the same arithmetic as the rolling update in `find`. */
const hashOf = (text: string, from: number, length: number): number => {
  let hash = 0
  for (let k = 0; k < length; k++) hash = (Math.imul(hash, BASE) + text.charCodeAt(from + k)) & MASK
  return hash
}

/** Hashes of the key's runs, by their low 16 bits: a window whose bit is clear is not one (nearly all are not). */
const FILTER_BITS = 0xffff

/**
 * Cuts the key's echoes out of texts.
 *
 * @internal
 */
export interface Scrubber {
  /** `text` with every echo of the key replaced by `<redacted>` (the same string when there is none). */
  readonly scrub: (text: string) => string
  /** `text` scrubbed, then clipped to 1000 characters. */
  readonly message: (text: string) => string
  /**
   * A header value kept as a request id: at most 128 characters of visible ASCII with no echo of the key;
   * anything else is dropped (`undefined`), not repaired.
   */
  readonly requestId: (value: string | undefined) => string | undefined
}

const clip = (text: string): string => text.length > MAX_MESSAGE ? `${text.slice(0, MAX_MESSAGE)}…` : text

const identity: Scrubber = {
  scrub: (text) => text,
  message: clip,
  requestId: (value) =>
    value !== undefined && value.length <= MAX_REQUEST_ID && REQUEST_ID.test(value) ? value : undefined
}

/**
 * The scrubber of one key. Building it hashes the key's runs; scrubbing a text is linear in its length.
 *
 * @internal
 */
export const make = (secret: string): Scrubber => {
  if (secret.length < MIN_KEY) return identity
  const key = fold(secret)
  const run = Math.min(RUN, key.length)
  const grams = new Set<string>()
  const filter = new Uint8Array(FILTER_BITS + 1)
  for (let i = 0; i + run <= key.length; i++) {
    grams.add(key.slice(i, i + run))
    filter[hashOf(key, i, run) & FILTER_BITS] = 1
  }
  // BASE^(run - 1), to take the first unit out of a window's hash.
  let top = 1
  for (let k = 1; k < run; k++) top = Math.imul(top, BASE) & MASK

  /**
   * Marks the runs of the key in `level` on `cover`, a difference array over the text as sent (+1 where a run
   * starts, -1 where it ends), made on the first run found; returns it.
   */
  const find = (level: Level, size: number, cover: Int32Array | undefined): Int32Array | undefined => {
    const text = fold(level.text)
    if (text.length < run) return cover
    let hash = hashOf(text, 0, run)
    for (let i = 0;; i++) {
      if (filter[hash & FILTER_BITS] === 1 && grams.has(text.slice(i, i + run))) {
        cover ??= new Int32Array(size + 1)
        cover[level.starts === undefined ? i : level.starts[i]!]!++
        cover[level.ends === undefined ? i + run : level.ends[i + run - 1]!]!--
      }
      if (i + run >= text.length) return cover
      hash = (Math.imul(hash - Math.imul(text.charCodeAt(i), top), BASE) + text.charCodeAt(i + run)) & MASK
    }
  }

  const scrubOnce = (text: string): string => {
    let cover: Int32Array | undefined
    let level: Level | undefined = { text, starts: undefined, ends: undefined }
    for (let depth = 0; level !== undefined; depth++) {
      cover = find(level, text.length, cover)
      level = depth < LEVELS ? decode(level) : undefined
    }
    if (cover === undefined) return text
    // Each stretch covered by one run or more (runs that touch or overlap are one stretch) becomes one marker.
    let out = ""
    let copied = 0
    let depth = 0
    for (let i = 0; i <= text.length; i++) {
      const before = depth
      depth += cover[i]!
      if (before === 0 && depth > 0) {
        out += text.slice(copied, i) + REDACTED
      } else if (before > 0 && depth === 0) {
        copied = i
      }
    }
    return out + text.slice(copied)
  }

  const scrub = (text: string): string => {
    // More passes in case cutting joined two pieces into a new echo; a pass that finds nothing returns the
    // text itself.
    let current = text
    for (let pass = 0; pass < 3; pass++) {
      const next = scrubOnce(current)
      if (next === current) return current
      current = next
    }
    return current
  }

  // Scrubbing a prefix gives the same first MAX_MESSAGE characters as scrubbing the whole text when its result
  // is at least MAX_MESSAGE + margin long: only runs that cross the cut differ, and what is left of them lies in
  // the last `margin` characters of the result. Most texts are short; a long one is read in growing prefixes,
  // so that a huge body costs what its first few kilobytes do.
  const margin = 10 * run * MAX_ENCODED_WIDTH

  const message = (text: string): string => {
    for (let prefix = 4 * (MAX_MESSAGE + margin); prefix < text.length; prefix *= 4) {
      const head = scrub(text.slice(0, prefix))
      if (head.length >= MAX_MESSAGE + margin) return `${head.slice(0, MAX_MESSAGE)}…`
    }
    return clip(scrub(text))
  }

  const requestId = (value: string | undefined): string | undefined =>
    identity.requestId(value) !== undefined && scrub(value!) === value ? value : undefined

  return { scrub, message, requestId }
}

/** Scrubbers by key, so that each client's key is hashed once. Bounded: keys are few, but need not be. */
const byKey = new Map<string, Scrubber>()
const MAX_KEYS = 16

/**
 * The scrubber of `secret`, made on first use and kept.
 *
 * @internal
 */
export const forSecret = (secret: string): Scrubber => {
  let found = byKey.get(secret)
  if (found === undefined) {
    if (byKey.size >= MAX_KEYS) byKey.delete(byKey.keys().next().value!)
    found = make(secret)
    byKey.set(secret, found)
  }
  return found
}
