/**
 * Where a call waits in line: a FIFO queue of permits (a call's concurrency
 * slot, the rate limiter's gate, the breaker's lock).
 *
 * Why not Effect's `Semaphore`: in effect 3.22 its waiters are a `Set` of
 * observers, and a release calls each observer while `free > 0`; but a waiter
 * only counts its permit as taken once its fiber runs again, so `free` stays
 * above 0 through the whole loop and one release resumes every waiter. All but
 * one find the permit gone and queue again at the back: O(waiters) work and
 * allocation per release, O(n²) in all, and no FIFO. With `maxConcurrency: 64`,
 * driving calls with `Effect.forEach(…, { concurrency: 256 })` cost 4.96 ms of
 * CPU per call and 1.4 GB of peak RSS, against 0.46 ms and 250 MB for 256
 * long-lived workers. `Effect.unsafeMakeSemaphore(64).withPermits(1)` alone
 * shows the cliff (`pnpm --filter @effect-inference/benchmarks slots`, figures
 * in docs/benchmarks.md): with 256 callers each operation went through the
 * wait 186 times, for 2.1 ms of CPU and 1.9 GB of peak RSS (64% of the time in
 * the garbage collector), and 1024 callers did not finish; this queue takes
 * 34 and 51 µs per operation there, one wait each, at 140–150 MB. Nothing else
 * in effect 3 fits: `TSemaphore` waits with `STM.retry`, and a commit re-runs
 * every transaction waiting on the ref (the same herd, measured in the same
 * script); a `Queue` of permits removes an interrupted taker by copying the
 * whole queue (O(n)) and loses an item handed to a taker that is interrupted
 * at that moment; `@effect/experimental`'s `RateLimiter` limits a rate, not
 * what is in flight.
 *
 * Here a waiter is a node of a doubly linked list. A release hands its permit
 * to the oldest waiter directly (the waiter holds it from that instant, before
 * its fiber runs), so a release wakes one fiber, and an interrupted waiter
 * unlinks itself: O(1) each, whatever the number waiting. Only the wait itself
 * is interruptible; it is wrapped, outside the interruptible part, by a handler
 * that gives back (passes on) a permit handed to a waiter that was interrupted
 * at the same moment, so no permit is ever lost. For that, `take` is given the
 * caller's `restore` rather than being wrapped in it: a permit returned through
 * `restore(take)` could still be lost to an interruption between the wait and
 * the caller's next step, and so `takeScoped` puts it in the scope in the same
 * uninterruptible step.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/** Makes an effect interruptible again inside `Effect.uninterruptibleMask`. */
export type Restore = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

interface Waiter {
  prev: Waiter | undefined
  next: Waiter | undefined
  /** Set by a release that hands this waiter its permit: from then on the waiter holds it. */
  granted: boolean
  /** Whether it is still in the list (an unlinked node must not be unlinked twice). */
  linked: boolean
  resume: ((effect: Effect.Effect<void>) => void) | undefined
}

/**
 * A FIFO queue of `permits` permits.
 *
 * @internal
 */
export class Slots {
  private free: number
  private head: Waiter | undefined = undefined
  private tail: Waiter | undefined = undefined
  private queued = 0

  constructor(readonly permits: number) {
    this.free = permits
  }

  /** Permits not held by anyone (0 whenever someone waits). */
  get available(): number {
    return this.free
  }

  /** Fibers waiting for a permit. */
  get waiting(): number {
    return this.queued
  }

  private enqueue(): Waiter {
    const waiter: Waiter = { prev: this.tail, next: undefined, granted: false, linked: true, resume: undefined }
    if (this.tail === undefined) this.head = waiter
    else this.tail.next = waiter
    this.tail = waiter
    this.queued++
    return waiter
  }

  private unlink(waiter: Waiter): void {
    if (!waiter.linked) return
    waiter.linked = false
    if (waiter.prev === undefined) this.head = waiter.next
    else waiter.prev.next = waiter.next
    if (waiter.next === undefined) this.tail = waiter.prev
    else waiter.next.prev = waiter.prev
    waiter.prev = undefined
    waiter.next = undefined
    this.queued--
  }

  /** Gives a permit back: to the oldest waiter if there is one, else to the pool. */
  readonly unsafeRelease = (): void => {
    const waiter = this.head
    if (waiter === undefined) {
      this.free++
      return
    }
    this.unlink(waiter)
    waiter.granted = true
    // The waiter's fiber may have been interrupted already; its handler then sees `granted` and passes it on.
    waiter.resume?.(Effect.void)
  }

  /** Gives a permit back. */
  readonly release: Effect.Effect<void> = Effect.sync(this.unsafeRelease)

  /**
   * Waits in line for a permit, interruptibly (under `restore`). An interrupted
   * waiter leaves the line at once, and gives back a permit handed to it in the
   * same moment.
   */
  private wait(restore: Restore): Effect.Effect<void> {
    const waiter = this.enqueue()
    return Effect.onInterrupt(
      restore(Effect.async<void>((resume) => {
        // A permit may have been handed over between enqueueing and this registration.
        if (waiter.granted) resume(Effect.void)
        else waiter.resume = resume
      })),
      () =>
        Effect.sync(() => {
          if (waiter.granted) this.unsafeRelease()
          else this.unlink(waiter)
        })
    )
  }

  /**
   * Takes a permit, to be called in an uninterruptible region: only the wait
   * runs under `restore`. When it succeeds the caller holds a permit and must
   * release it; when it is interrupted the caller holds none.
   */
  take(restore: Restore): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.free > 0) {
        this.free--
        return Effect.void
      }
      return this.wait(restore)
    })
  }

  /**
   * Runs `self` holding a permit, released when `self` ends, however it ends.
   * The wait is interruptible; `self` runs with the caller's interruptibility.
   */
  withPermit<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return Effect.uninterruptibleMask((restore) =>
      Effect.suspend(() => {
        if (this.free > 0) {
          this.free--
          return Effect.ensuring(restore(self), this.release)
        }
        return Effect.zipRight(this.wait(restore), Effect.ensuring(restore(self), this.release))
      })
    )
  }

  /**
   * Takes a permit for the current scope, released when the scope closes. The
   * wait is interruptible; once taken, the permit is in the scope (no moment in
   * between where an interruption could lose it).
   */
  readonly takeScoped: Effect.Effect<void, never, Scope.Scope> = Effect.uninterruptibleMask((restore) =>
    Effect.zipRight(this.take(restore), Effect.addFinalizer(() => this.release))
  )
}

/**
 * A FIFO queue of `permits` permits (a whole number >= 1).
 *
 * @internal
 */
export const unsafeMake = (permits: number): Slots => new Slots(permits)

/**
 * A FIFO queue of `permits` permits (a whole number >= 1).
 *
 * @internal
 */
export const make = (permits: number): Effect.Effect<Slots> => Effect.sync(() => new Slots(permits))
