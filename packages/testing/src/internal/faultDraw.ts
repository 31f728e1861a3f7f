/**
 * Which chat requests get a fault at a given rate: a stratified draw.
 *
 * An independent coin per request lets a short run show no fault at all (with
 * the default seed, a rate of 0.2 once gave none in the first 22 requests), so a
 * test or a demo of a few dozen calls proved nothing. Here requests come in
 * blocks of {@link BLOCK}; block `k` holds exactly
 * `round(rate·BLOCK·(k+1)) − round(rate·BLOCK·k)` faults at shuffled positions, so
 * after every whole block the count is the nearest whole number to `rate × requests`,
 * for every seed, and inside a block it is off by at most that block's faults.
 *
 * A pure core (a state and a step) with the randomness passed in; the simulator
 * keeps the state.
 */

/** Requests per block. 10 keeps a rate like 0.05 exact over 20 requests and any rate within 2 points over 50. */
export const BLOCK = 10

/** @internal */
export interface State {
  readonly rate: number
  /** Blocks dealt so far. */
  readonly blocks: number
  /** The rest of the current block: `true` where a fault goes. */
  readonly pending: ReadonlyArray<boolean>
}

/** A fresh draw at `rate`. @internal */
export const initial = (rate: number): State => ({ rate, blocks: 0, pending: [] })

const deal = (state: State, random: () => number): ReadonlyArray<boolean> => {
  const faults = Math.round(state.rate * BLOCK * (state.blocks + 1)) - Math.round(state.rate * BLOCK * state.blocks)
  const slots = Array.from({ length: BLOCK }, (_, i) => i < faults)
  for (let i = slots.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const swap = slots[i]!
    slots[i] = slots[j]!
    slots[j] = swap
  }
  return slots
}

/** Whether the next request gets a fault, and the state after it. @internal */
export const step = (state: State, random: () => number): readonly [State, boolean] => {
  if (state.rate <= 0) return [state, false]
  const current = state.pending.length > 0
    ? state
    : { ...state, pending: deal(state, random), blocks: state.blocks + 1 }
  const [fault, ...rest] = current.pending
  return [{ ...current, pending: rest }, fault === true]
}
