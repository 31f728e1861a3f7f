/**
 * Where a concurrency limit decides: the slots of one key as leases (who holds
 * each, and until when), and pure functions over them. A slot is held while
 * its lease lasts; a holder renews its lease while its call runs, so a holder
 * that dies (a crashed process) stops renewing and its slot comes back when
 * the lease expires.
 *
 * Nothing here reads a clock or runs an effect: the caller passes `now`. A
 * store applies these functions to what it keeps (the memory store does
 * exactly that; a store on a server does the same in one script per
 * operation, see `ConcurrencyStore`).
 */

/**
 * The leases of one key: lease id → when it expires (epoch milliseconds). A
 * lease is live while `now` is before its expiry.
 *
 * @internal
 */
export type Leases = ReadonlyMap<string, number>

/** @internal */
export const empty: Leases = new Map()

/**
 * The leases still live at `now`.
 *
 * @internal
 */
export const expire = (leases: Leases, now: number): Leases => {
  let live: Map<string, number> | undefined
  for (const [id, expiry] of leases) {
    if (expiry > now) continue
    live ??= new Map(leases)
    live.delete(id)
  }
  return live ?? leases
}

/**
 * How many slots are taken at `now`.
 *
 * @internal
 */
export const held = (leases: Leases, now: number): number => expire(leases, now).size

/**
 * Takes a slot for `leaseId` until `now + leaseMillis`, if fewer than `limit`
 * are taken. A lease id that already holds a slot keeps it, renewed: asking
 * again (after an answer was lost) never takes a second slot.
 *
 * @internal
 */
export const admit = (
  leases: Leases,
  leaseId: string,
  now: number,
  limit: number,
  leaseMillis: number
): readonly [Leases, boolean] => {
  const live = expire(leases, now)
  if (!live.has(leaseId) && live.size >= limit) return [live, false]
  return [new Map(live).set(leaseId, now + leaseMillis), true]
}

/**
 * Extends a live lease to `now + leaseMillis`. A lease that expired (or was
 * never taken) is not brought back: its slot may be someone else's now, and
 * the answer `false` says so.
 *
 * @internal
 */
export const renew = (
  leases: Leases,
  leaseId: string,
  now: number,
  leaseMillis: number
): readonly [Leases, boolean] => {
  const live = expire(leases, now)
  if (!live.has(leaseId)) return [live, false]
  return [new Map(live).set(leaseId, now + leaseMillis), true]
}

/**
 * Gives a slot back; a lease not held (released already, or expired) changes
 * nothing.
 *
 * @internal
 */
export const release = (leases: Leases, leaseId: string): Leases => {
  if (!leases.has(leaseId)) return leases
  const next = new Map(leases)
  next.delete(leaseId)
  return next
}
