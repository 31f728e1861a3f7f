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
 * Two lines live here, past 400 lines together: `Slots`, in memory, and
 * `StoreSlots`, the same FIFO line in front of a `ConcurrencyStore`; they share
 * the waiter list and its rules for interrupted waiters.
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
 *
 * `makeWithStore` puts such a line in front of a `ConcurrencyStore`, for a
 * limit shared by several processes: see `StoreSlots` below.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import type * as ConcurrencyStore from "../ConcurrencyStore.js"
import * as InferenceError from "../InferenceError.js"

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
 * What a call needs of a concurrency limit: to run holding a slot, or to hold
 * one for a scope. `Slots` keeps the limit in this process alone;
 * `StoreSlots` in a store that other processes share.
 *
 * @internal
 */
export interface Permits {
  /**
   * Runs `self` holding a slot, given back when `self` ends, however it ends.
   * The wait is interruptible; `self` runs with the caller's interruptibility.
   */
  readonly withPermit: <A, E, R>(
    self: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | InferenceError.CoordinationError, R>
  /** Takes a slot for the current scope, given back when the scope closes. */
  readonly takeScoped: Effect.Effect<void, InferenceError.CoordinationError, Scope.Scope>
  /**
   * Takes a slot for `scope`, given back when it closes: `takeScoped` without
   * `Scope.extend`, which provides the scope as a service (about 20 runtime
   * operations of an uncontended take, for each stream).
   */
  readonly takeIn: (scope: Scope.Scope) => Effect.Effect<void, InferenceError.CoordinationError>
}

/**
 * A FIFO queue of `permits` permits.
 *
 * @internal
 */
export class Slots implements Permits {
  private free: number
  private head: Waiter | undefined = undefined
  private tail: Waiter | undefined = undefined
  private queued = 0

  constructor(private limit: number) {
    this.free = limit
  }

  /** Permits in all, held or not. */
  get permits(): number {
    return this.limit
  }

  /**
   * Changes the number of permits. More are handed to the oldest waiters at
   * once; fewer take effect as the holders give theirs back (until then more
   * than `permits` may be held, and nobody new gets one).
   */
  resize(permits: number): void {
    this.free += permits - this.limit
    this.limit = permits
    while (this.free > 0 && this.head !== undefined) {
      this.free--
      this.grant(this.head)
    }
  }

  /** Hands a permit to `waiter`, which holds it from this instant, before its fiber runs. */
  private grant(waiter: Waiter): void {
    this.unlink(waiter)
    waiter.granted = true
    // The waiter's fiber may have been interrupted already; its handler then sees `granted` and passes it on.
    waiter.resume?.(Effect.void)
  }

  /** Permits not held by anyone (0 whenever someone waits; below 0 after `resize` down, until enough come back). */
  get available(): number {
    return this.free
  }

  /** Permits held (more than `permits` after `resize` down, until enough come back). */
  get inUse(): number {
    return this.limit - this.free
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
    // Below 0 after a resize down: this permit pays that back, and nobody is given one.
    if (waiter === undefined || this.free < 0) {
      this.free++
      return
    }
    this.grant(waiter)
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
  /** Takes a free permit now, if there is one (no waiting): whether it did. */
  tryTake(): boolean {
    if (this.free <= 0) return false
    this.free--
    return true
  }

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
  readonly takeScoped: Effect.Effect<void, never, Scope.Scope> = Effect.flatMap(
    Effect.scope,
    (scope) => this.takeIn(scope)
  )

  takeIn(scope: Scope.Scope): Effect.Effect<void> {
    return Effect.uninterruptibleMask((restore) =>
      Effect.zipRight(this.take(restore), Scope.addFinalizer(scope, this.release))
    )
  }
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

/** A slot taken through a store: its lease id, and whether the store holds it (not when it could not answer). */
interface Lease {
  readonly id: string
  readonly stored: boolean
}

/**
 * A concurrency limit kept in a `ConcurrencyStore`, behind a FIFO line of
 * this process.
 *
 * A store cannot wake a waiter, and a thousand waiters polling it would be a
 * thousand requests per poll, so the waiters wait in a `Slots` line of one
 * permit: whoever holds that permit is the head of the line, and only the
 * head asks the store. When the store says no, the head waits for a call of
 * this line to end (a release here wakes it at once) or, if this line holds
 * fewer than `limit` slots (other processes hold the rest), for a poll
 * interval at most, and asks again. Once it has a slot it gives the head
 * permit to the next in line. So the order within the process is FIFO, a
 * release or an interrupted waiter costs O(1) whatever the number waiting,
 * and the store sees one request at a time from this line.
 *
 * While a call runs, its lease is renewed every third of the lease time, so
 * two renewals can fail before it expires. A renewal that finds the lease
 * expired (the process stalled longer than the lease) logs a warning: the
 * slot may be someone else's by then, and the call goes on regardless.
 *
 * When the store cannot answer, the line lets a call through unleased if it
 * holds fewer than `limit` slots itself: each process keeps to the limit on
 * its own until the store is back, rather than stop every call; unless the
 * store's error says `rejectCall`, when the call fails with
 * `CoordinationError` and is not sent.
 *
 * @internal
 */
export class StoreSlots implements Permits {
  /** Its holder is the head of the line, the one waiter that asks the store. */
  private readonly line = new Slots(1)
  /** Slots held by this line's calls. */
  private holding = 0
  /** Counts the releases here, so that the head, between asking and waiting, never misses one. */
  private releases = 0
  /** Wakes the head, while it waits. */
  private wake: (() => void) | undefined = undefined
  private leases = 0
  /** Unique to this line, so that lease ids are unique across processes. */
  private readonly prefix = globalThis.crypto.randomUUID()

  constructor(
    private currentLimit: number,
    readonly key: string,
    private readonly store: ConcurrencyStore.ConcurrencyStore.Service,
    readonly leaseMillis: number,
    readonly pollMillis: number
  ) {}

  /** Slots in all, across every process using `key`. */
  get limit(): number {
    return this.currentLimit
  }

  /**
   * Changes the limit the store is asked with. Leases over a lower limit end
   * as their calls do; a higher one wakes the head of the line to ask again.
   */
  resize(limit: number): void {
    const higher = limit > this.currentLimit
    this.currentLimit = limit
    if (!higher) return
    const wake = this.wake
    this.wake = undefined
    wake?.()
  }

  /** Slots held by this line's calls. */
  get held(): number {
    return this.holding
  }

  /** Calls waiting for a slot, the head among them. */
  get waiting(): number {
    return this.line.waiting + (this.line.available === 0 ? 1 : 0)
  }

  private failed(error: ConcurrencyStore.ConcurrencyStoreError, consequence: string): Effect.Effect<void> {
    return Effect.logWarning(`Concurrency store failed: ${consequence}`).pipe(
      Effect.annotateLogs({ key: this.key, error: error.message })
    )
  }

  /** Waits until a release here after the `seen`-th, or for a poll interval at most when `poll`. */
  private released(seen: number, poll: boolean): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.releases !== seen) return Effect.void
      const signal = Effect.async<void>((resume) => {
        this.wake = () => resume(Effect.void)
        return Effect.sync(() => {
          this.wake = undefined
        })
      })
      return poll ? Effect.race(signal, Effect.sleep(this.pollMillis)) : signal
    })
  }

  /**
   * Asks the store for a slot for a new lease id. The request is
   * interruptible; an interruption releases the id, as the store may have
   * granted it just then (a release is idempotent).
   */
  private tryAcquire(restore: Restore): Effect.Effect<Lease | undefined, InferenceError.CoordinationError> {
    return Effect.suspend(() => {
      const id = `${this.prefix}:${this.leases++}`
      return restore(
        this.store.tryAcquire({ key: this.key, leaseId: id, limit: this.currentLimit, leaseMillis: this.leaseMillis })
      ).pipe(
        Effect.onInterrupt(() => Effect.ignore(this.store.release({ key: this.key, leaseId: id }))),
        Effect.map((granted): Lease | undefined => granted ? { id, stored: true } : undefined),
        Effect.catchAll((error) =>
          error.rejectCall === true
            ? Effect.fail(new InferenceError.CoordinationError({ store: "concurrency", reason: error.message }))
            : Effect.as(this.failed(error, "a call went through unleased"), { id, stored: false })
        )
      )
    })
  }

  /** The head's turn: asks the store until it has a slot; the waits are interruptible. */
  private ask(restore: Restore): Effect.Effect<Lease, InferenceError.CoordinationError> {
    return Effect.suspend(() => {
      const seen = this.releases
      // This line holds every slot: only one of its own releases can free one, and the store need not be asked.
      if (this.holding >= this.currentLimit) {
        return Effect.zipRight(restore(this.released(seen, false)), this.ask(restore))
      }
      return Effect.flatMap(this.tryAcquire(restore), (lease) => {
        if (lease === undefined) return Effect.zipRight(restore(this.released(seen, true)), this.ask(restore))
        this.holding++
        return Effect.succeed(lease)
      })
    })
  }

  /** Takes a slot, to be called in an uninterruptible region (see `Slots.take`); the caller must release it. */
  private take(restore: Restore): Effect.Effect<Lease, InferenceError.CoordinationError> {
    return Effect.zipRight(this.line.take(restore), Effect.ensuring(this.ask(restore), this.line.release))
  }

  private release(lease: Lease): Effect.Effect<void> {
    return Effect.ensuring(
      lease.stored
        ? Effect.catchAll(
          this.store.release({ key: this.key, leaseId: lease.id }),
          (error) => this.failed(error, "a slot was not given back; its lease will expire")
        )
        : Effect.void,
      Effect.sync(() => {
        this.holding--
        this.releases++
        const wake = this.wake
        this.wake = undefined
        wake?.()
      })
    )
  }

  /** Renews the lease every third of its time, until it is lost; interrupted when the call ends. */
  private keepAlive(lease: Lease): Effect.Effect<void> {
    const renew = Effect.catchAll(
      this.store.renew({ key: this.key, leaseId: lease.id, leaseMillis: this.leaseMillis }),
      (error) => Effect.as(this.failed(error, "a lease was not renewed"), true)
    )
    return Effect.zipRight(
      Effect.repeat(Effect.zipRight(Effect.sleep(this.leaseMillis / 3), renew), { while: (renewed) => renewed }),
      Effect.logWarning("Concurrency lease expired before its call ended; the call goes on").pipe(
        Effect.annotateLogs({ key: this.key, lease: lease.id })
      )
    )
  }

  /**
   * Keeps a taken lease for `run` (to be called in the uninterruptible region
   * `take` ran in): renewed, and given back when `run` ends (`hold`
   * "attempt") or when `hold` closes.
   */
  private keep<A, E, R>(
    lease: Lease,
    hold: Scope.Scope | "attempt",
    run: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E, R> {
    const renewal = Effect.interruptible(this.keepAlive(lease))
    if (hold !== "attempt") {
      return Effect.zipRight(
        Scope.addFinalizer(hold, this.release(lease)),
        // Closed before the release above: finalizers run in reverse.
        lease.stored ? Effect.zipRight(Effect.forkIn(renewal, hold), run) : run
      )
    }
    if (!lease.stored) return Effect.ensuring(run, this.release(lease))
    return Effect.flatMap(
      Effect.fork(renewal),
      (renewing) => Effect.ensuring(run, Effect.zipRight(Fiber.interrupt(renewing), this.release(lease)))
    )
  }

  withPermit<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | InferenceError.CoordinationError, R> {
    return Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(this.take(restore), (lease) => this.keep(lease, "attempt", restore(self)))
    )
  }

  /**
   * Runs `use` holding a slot, given the number of slots the store holds with
   * it (this one included, every process's; this line's own count when the
   * store could not answer): held while `use` runs (`hold` "attempt") or until
   * `hold` closes. `use` runs with the caller's interruptibility; the wait is
   * interruptible.
   */
  counted<A, E, R>(
    hold: Scope.Scope | "attempt",
    use: (held: number) => Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | InferenceError.CoordinationError, R> {
    return Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(this.take(restore), (lease) => {
        const count: Effect.Effect<number> = lease.stored
          ? Effect.catchAll(
            Effect.map(this.store.held(this.key), (held) => Math.max(held, 1)),
            () => Effect.succeed(this.holding)
          )
          : Effect.succeed(this.holding)
        return this.keep(lease, hold, Effect.flatMap(count, (held) => restore(use(held))))
      })
    )
  }

  readonly takeScoped: Effect.Effect<void, InferenceError.CoordinationError, Scope.Scope> = Effect.flatMap(
    Effect.scope,
    (scope) => this.takeIn(scope)
  )

  takeIn(scope: Scope.Scope): Effect.Effect<void, InferenceError.CoordinationError> {
    return Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(this.take(restore), (lease) => this.keep(lease, scope, Effect.void))
    )
  }
}

/**
 * What `makeWithStore` needs.
 *
 * @internal
 */
export interface StoreOptions {
  /** Slots in all, across every process using `key`: a whole number >= 1. */
  readonly limit: number
  readonly key: string
  readonly store: ConcurrencyStore.ConcurrencyStore.Service
  /**
   * How long a slot stays taken without a renewal: the longest a crashed
   * process's slot stays lost. Renewed every third of it. Default 30 seconds.
   */
  readonly lease?: Duration.DurationInput | undefined
  /** How long the head of the line waits before asking again while other processes hold the slots. Default 100 ms. */
  readonly pollInterval?: Duration.DurationInput | undefined
}

/**
 * A limit of `limit` slots kept in `store` under `key`, behind a FIFO line of
 * this process (see `StoreSlots`).
 *
 * @internal
 */
export const unsafeMakeWithStore = (options: StoreOptions): StoreSlots =>
  new StoreSlots(
    options.limit,
    options.key,
    options.store,
    Math.max(1, Math.round(Duration.toMillis(options.lease ?? Duration.seconds(30)))),
    Duration.toMillis(options.pollInterval ?? Duration.millis(100))
  )

/**
 * A limit of `limit` slots kept in `store` under `key`, behind a FIFO line of
 * this process (see `StoreSlots`).
 *
 * @internal
 */
export const makeWithStore = (options: StoreOptions): Effect.Effect<StoreSlots> =>
  Effect.sync(() => unsafeMakeWithStore(options))
