import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as ConcurrencyStore from "../../src/ConcurrencyStore.js"
import * as Slots from "../../src/internal/slots.js"

/** Lets forked fibers run until each is waiting (or done). */
const settle = Effect.repeatN(Effect.yieldNow(), 20)

/** Forks `n` fibers that each take a permit in turn and note their number. */
const forkInLine = (slots: Slots.Permits, n: number, order: Array<number>) =>
  Effect.forEach(
    Array.from({ length: n }, (_, i) => i),
    (i) =>
      Effect.tap(
        Effect.fork(slots.withPermit(Effect.sync(() => order.push(i)))),
        // Each in the line before the next comes.
        () => settle
      )
  )

describe("Slots", () => {
  it.effect("permits are taken at once while there are any", () =>
    Effect.gen(function*() {
      const slots = Slots.unsafeMake(2)
      yield* Effect.uninterruptibleMask((restore) => slots.take(restore))
      assert.strictEqual(slots.available, 1)
      assert.strictEqual(yield* slots.withPermit(Effect.succeed("ran")), "ran")
      assert.strictEqual(slots.available, 1)
      yield* slots.release
      assert.strictEqual(slots.available, 2)
    }))

  it.effect("waiters get permits in the order they came (FIFO)", () =>
    Effect.gen(function*() {
      const slots = Slots.unsafeMake(1)
      yield* Effect.uninterruptibleMask((restore) => slots.take(restore))
      const order: Array<number> = []
      const fibers = yield* forkInLine(slots, 6, order)
      assert.strictEqual(slots.waiting, 6)
      yield* slots.release
      yield* Fiber.joinAll(fibers)
      assert.deepStrictEqual(order, [0, 1, 2, 3, 4, 5])
      assert.strictEqual(slots.available, 1)
      assert.strictEqual(slots.waiting, 0)
    }))

  it.effect("a release wakes one waiter and hands it the permit (no herd)", () =>
    Effect.gen(function*() {
      const slots = Slots.unsafeMake(1)
      yield* Effect.uninterruptibleMask((restore) => slots.take(restore))
      const taken = yield* Effect.forEach(Array.from({ length: 5 }), () =>
        Effect.fork(Effect.uninterruptibleMask((restore) => slots.take(restore))))
      yield* settle
      yield* slots.release
      // The permit went to the first waiter at the release: no one else was woken, and none is left free.
      assert.strictEqual(slots.waiting, 4)
      assert.strictEqual(slots.available, 0)
      yield* Fiber.join(taken[0]!)
      assert.strictEqual(slots.waiting, 4)
      yield* Fiber.interruptAll(taken.slice(1))
      yield* slots.release
      assert.strictEqual(slots.available, 1)
    }))

  it.effect("an interrupted waiter leaves the line at once, and the others keep their order", () =>
    Effect.gen(function*() {
      const slots = Slots.unsafeMake(1)
      yield* Effect.uninterruptibleMask((restore) => slots.take(restore))
      const order: Array<number> = []
      const fibers = yield* forkInLine(slots, 4, order)
      yield* Fiber.interrupt(fibers[1]!)
      assert.strictEqual(slots.waiting, 3)
      yield* Fiber.interrupt(fibers[3]!)
      assert.strictEqual(slots.waiting, 2)
      yield* slots.release
      yield* Fiber.join(fibers[0]!)
      yield* Fiber.join(fibers[2]!)
      assert.deepStrictEqual(order, [0, 2])
      assert.strictEqual(slots.available, 1)
      assert.strictEqual(slots.waiting, 0)
    }))

  describe("a permit handed to a waiter interrupted at the same moment is not lost", () => {
    const handedWhileInterrupted = (releaseFirst: boolean) =>
      Effect.gen(function*() {
        const slots = Slots.unsafeMake(1)
        yield* Effect.uninterruptibleMask((restore) => slots.take(restore))
        let ran = false
        const first = yield* Effect.fork(slots.withPermit(Effect.sync(() => {
          ran = true
        })))
        const order: Array<number> = []
        yield* settle
        const behind = yield* forkInLine(slots, 1, order)
        // One synchronous step: the release hands the permit to `first`, whose interruption is already (or then) sent.
        yield* Effect.sync(() => {
          if (releaseFirst) slots.unsafeRelease()
          first.unsafeInterruptAsFork(FiberId.none)
          if (!releaseFirst) slots.unsafeRelease()
        })
        const exit = yield* Fiber.await(first)
        assert.isTrue(Exit.isInterrupted(exit))
        assert.isFalse(ran)
        // The permit went on to the next in line, and came back.
        yield* Fiber.join(behind[0]!)
        assert.deepStrictEqual(order, [0])
        assert.strictEqual(slots.available, 1)
        assert.strictEqual(slots.waiting, 0)
      })

    it.effect("released, then interrupted", () => handedWhileInterrupted(true))
    it.effect("interrupted, then released", () => handedWhileInterrupted(false))

    it.effect("with no one behind, it goes back to the pool", () =>
      Effect.gen(function*() {
        const slots = Slots.unsafeMake(1)
        yield* Effect.uninterruptibleMask((restore) => slots.take(restore))
        const waiter = yield* Effect.fork(Effect.uninterruptibleMask((restore) => slots.take(restore)))
        yield* settle
        yield* Effect.sync(() => {
          slots.unsafeRelease()
          waiter.unsafeInterruptAsFork(FiberId.none)
        })
        assert.isTrue(Exit.isInterrupted(yield* Fiber.await(waiter)))
        assert.strictEqual(slots.available, 1)
      }))
  })

  it.effect("withPermit gives the permit back however the effect ends", () =>
    Effect.gen(function*() {
      const slots = Slots.unsafeMake(1)
      assert.strictEqual(yield* Effect.flip(slots.withPermit(Effect.fail("boom" as const))), "boom")
      assert.strictEqual(slots.available, 1)
      const exit = yield* Effect.exit(slots.withPermit(Effect.die("defect")))
      assert.isTrue(Exit.isFailure(exit))
      assert.strictEqual(slots.available, 1)
      const running = yield* Effect.fork(slots.withPermit(Effect.never))
      yield* settle
      assert.strictEqual(slots.available, 0)
      yield* Fiber.interrupt(running)
      assert.strictEqual(slots.available, 1)
    }))

  it.effect("takeScoped holds the permit until its scope closes; an interrupted wait holds none", () =>
    Effect.gen(function*() {
      const slots = Slots.unsafeMake(1)
      const scope = yield* Scope.make()
      yield* Scope.extend(slots.takeScoped, scope)
      assert.strictEqual(slots.available, 0)
      const waiting = yield* Effect.fork(Effect.scoped(slots.takeScoped))
      yield* settle
      assert.strictEqual(slots.waiting, 1)
      yield* Fiber.interrupt(waiting)
      assert.strictEqual(slots.waiting, 0)
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(slots.available, 1)
    }))

  it.effect("takeIn holds the permit until the scope it is given closes; an interrupted wait holds none", () =>
    Effect.gen(function*() {
      const slots = Slots.unsafeMake(1)
      const scope = yield* Scope.make()
      yield* slots.takeIn(scope)
      assert.strictEqual(slots.available, 0)
      const other = yield* Scope.make()
      const waiting = yield* Effect.fork(slots.takeIn(other))
      yield* settle
      assert.strictEqual(slots.waiting, 1)
      yield* Fiber.interrupt(waiting)
      assert.strictEqual(slots.waiting, 0)
      yield* Scope.close(other, Exit.void)
      assert.strictEqual(slots.available, 0, "the interrupted wait took nothing into its scope")
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(slots.available, 1)
    }))

  it("permits in use never exceed the limit, and none is lost, under random interruptions", async () => {
    const scenario = FastCheck.record({
      permits: FastCheck.integer({ min: 1, max: 4 }),
      callers: FastCheck.array(
        FastCheck.record({
          // Turns of the scheduler the caller holds its permit for.
          holdFor: FastCheck.integer({ min: 0, max: 3 }),
          // Turns after which it is interrupted, if it is.
          interruptAfter: FastCheck.option(FastCheck.integer({ min: 0, max: 12 }), { nil: undefined }),
          // How it holds the permit: withPermit, or takeScoped in a scope of its own.
          scoped: FastCheck.boolean()
        }),
        { minLength: 1, maxLength: 24 }
      )
    })
    await FastCheck.assert(
      FastCheck.asyncProperty(scenario, ({ callers, permits }) =>
        Effect.runPromise(Effect.gen(function*() {
          const slots = Slots.unsafeMake(permits)
          let held = 0
          let most = 0
          const hold = (turns: number) =>
            Effect.acquireUseRelease(
              Effect.sync(() => {
                held++
                most = Math.max(most, held)
              }),
              () => Effect.repeatN(Effect.yieldNow(), turns),
              () =>
                Effect.sync(() => {
                  held--
                })
            )
          const fibers = yield* Effect.forEach(callers, (caller) =>
            Effect.fork(
              caller.scoped
                ? Effect.scoped(Effect.zipRight(slots.takeScoped, hold(caller.holdFor)))
                : slots.withPermit(hold(caller.holdFor))
            ))
          yield* Effect.forEach(
            callers,
            (caller, i) =>
              caller.interruptAfter === undefined
                ? Effect.void
                : Effect.fork(
                  Effect.zipRight(
                    Effect.repeatN(Effect.yieldNow(), caller.interruptAfter),
                    Fiber.interrupt(fibers[i]!)
                  )
                ),
            { discard: true }
          )
          const exits = yield* Fiber.awaitAll(fibers)
          assert.isAtMost(most, permits)
          callers.forEach((caller, i) => {
            if (caller.interruptAfter === undefined) assert.isTrue(Exit.isSuccess(exits[i]!))
          })
          assert.strictEqual(held, 0)
          assert.strictEqual(slots.available, permits, "a permit was lost")
          assert.strictEqual(slots.waiting, 0)
        }))),
      { numRuns: 300 }
    )
  })
})

describe("StoreSlots: a line in front of a ConcurrencyStore", () => {
  const key = "api-key"

  /** A call that holds its slot until `done` is completed. */
  const holdUntil = (slots: Slots.Permits, done: Deferred.Deferred<void>) => Effect.fork(slots.withPermit(done))

  it.effect("waiters get slots in the order they came, and a release in the line wakes the next at once", () =>
    Effect.gen(function*() {
      const store = yield* ConcurrencyStore.makeMemory
      // An hour between polls: only a release in the line itself can hand the slot on in this test.
      const slots = yield* Slots.makeWithStore({ limit: 1, key, store, pollInterval: "1 hour" })
      const done = yield* Deferred.make<void>()
      const holder = yield* holdUntil(slots, done)
      yield* settle
      const order: Array<number> = []
      const fibers = yield* forkInLine(slots, 5, order)
      assert.strictEqual(slots.waiting, 5)
      assert.strictEqual(yield* store.held(key), 1)
      yield* Deferred.succeed(done, undefined)
      yield* Fiber.join(holder)
      yield* Fiber.joinAll(fibers)
      assert.deepStrictEqual(order, [0, 1, 2, 3, 4])
      assert.strictEqual(slots.held, 0)
      assert.strictEqual(slots.waiting, 0)
      assert.strictEqual(yield* store.held(key), 0, "every lease was given back")
    }))

  it.effect("the limit holds across lines sharing the store; a slot freed elsewhere is taken at the next poll", () =>
    Effect.gen(function*() {
      const store = yield* ConcurrencyStore.makeMemory
      const a = yield* Slots.makeWithStore({ limit: 2, key, store, pollInterval: "100 millis" })
      const b = yield* Slots.makeWithStore({ limit: 2, key, store, pollInterval: "100 millis" })
      const first = yield* Deferred.make<void>()
      const second = yield* Deferred.make<void>()
      const holders = [yield* holdUntil(a, first), yield* holdUntil(a, second)]
      yield* settle
      let ran = false
      const waiting = yield* Effect.fork(b.withPermit(Effect.sync(() => {
        ran = true
      })))
      yield* settle
      assert.isFalse(ran, "line a holds both slots")
      assert.strictEqual(b.waiting, 1)
      yield* Deferred.succeed(first, undefined)
      yield* Fiber.join(holders[0]!)
      yield* settle
      assert.isFalse(ran, "line b cannot hear of a release in line a")
      yield* TestClock.adjust("100 millis")
      yield* Fiber.join(waiting)
      assert.isTrue(ran)
      yield* Deferred.succeed(second, undefined)
      yield* Fiber.join(holders[1]!)
      assert.strictEqual(yield* store.held(key), 0)
    }))

  it.effect("the slot of a holder that stopped renewing (a crashed process) comes back after the lease time", () =>
    Effect.gen(function*() {
      const store = yield* ConcurrencyStore.makeMemory
      assert.isTrue(yield* store.tryAcquire({ key, leaseId: "crashed", limit: 1, leaseMillis: 30_000 }))
      const slots = yield* Slots.makeWithStore({ limit: 1, key, store, lease: "30 seconds", pollInterval: "1 second" })
      const call = yield* Effect.fork(slots.withPermit(Effect.succeed("ran")))
      yield* TestClock.adjust("29 seconds")
      assert.isTrue(Option.isNone(yield* Fiber.poll(call)), "still waiting")
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(call), "ran")
    }))

  it.effect("a running call renews its lease: no one else takes its slot however long it runs", () =>
    Effect.gen(function*() {
      const store = yield* ConcurrencyStore.makeMemory
      const slots = yield* Slots.makeWithStore({ limit: 1, key, store, lease: "30 seconds" })
      const call = yield* Effect.fork(slots.withPermit(Effect.as(Effect.sleep("5 minutes"), "done")))
      yield* settle
      const other = store.tryAcquire({ key, leaseId: "other process", limit: 1, leaseMillis: 30_000 })
      for (let minute = 0; minute < 4; minute++) {
        yield* TestClock.adjust("1 minute")
        assert.isFalse(yield* other, `taken after ${minute + 1} minutes`)
      }
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(yield* Fiber.join(call), "done")
      assert.isTrue(yield* other, "given back when the call ended")
    }))

  it.effect("an interrupted waiter leaves the line at once, the head of the line too", () =>
    Effect.gen(function*() {
      const store = yield* ConcurrencyStore.makeMemory
      const slots = yield* Slots.makeWithStore({ limit: 1, key, store })
      const done = yield* Deferred.make<void>()
      const holder = yield* holdUntil(slots, done)
      yield* settle
      const order: Array<number> = []
      const fibers = yield* forkInLine(slots, 4, order)
      yield* Fiber.interrupt(fibers[0]!) // the head, waiting on the store
      assert.strictEqual(slots.waiting, 3)
      yield* Fiber.interrupt(fibers[2]!)
      assert.strictEqual(slots.waiting, 2)
      yield* Deferred.succeed(done, undefined)
      yield* Fiber.join(holder)
      yield* Fiber.join(fibers[1]!)
      yield* Fiber.join(fibers[3]!)
      assert.deepStrictEqual(order, [1, 3])
      assert.strictEqual(slots.waiting, 0)
      assert.strictEqual(yield* store.held(key), 0)
    }))

  it.effect("takeScoped holds a leased slot until its scope closes", () =>
    Effect.gen(function*() {
      const store = yield* ConcurrencyStore.makeMemory
      const slots = yield* Slots.makeWithStore({ limit: 1, key, store, lease: "30 seconds" })
      const scope = yield* Scope.make()
      yield* Scope.extend(slots.takeScoped, scope)
      yield* TestClock.adjust("2 minutes")
      assert.strictEqual(yield* store.held(key), 1, "renewed while the scope is open")
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(yield* store.held(key), 0)
      assert.strictEqual(slots.held, 0)
    }))

  it.effect("while the store cannot answer, the line keeps to the limit on its own", () =>
    Effect.gen(function*() {
      const down = new ConcurrencyStore.ConcurrencyStoreError({ message: "connection refused" })
      const store: ConcurrencyStore.ConcurrencyStore.Service = {
        tryAcquire: () => Effect.fail(down),
        renew: () => Effect.fail(down),
        release: () => Effect.fail(down),
        held: () => Effect.fail(down)
      }
      const slots = yield* Slots.makeWithStore({ limit: 2, key, store })
      const done = yield* Deferred.make<void>()
      const holders = [yield* holdUntil(slots, done), yield* holdUntil(slots, done)]
      yield* settle
      assert.strictEqual(slots.held, 2, "both went through")
      const third = yield* Effect.fork(slots.withPermit(Effect.succeed("third")))
      yield* settle
      assert.strictEqual(slots.waiting, 1, "the third waits for one of them")
      yield* Deferred.succeed(done, undefined)
      yield* Fiber.joinAll(holders)
      assert.strictEqual(yield* Fiber.join(third), "third")
      assert.strictEqual(slots.held, 0)
    }))

  it("slots in use never exceed the limit, and no lease is left behind, under random interruptions", async () => {
    const scenario = FastCheck.record({
      limit: FastCheck.integer({ min: 1, max: 4 }),
      callers: FastCheck.array(
        FastCheck.record({
          holdFor: FastCheck.integer({ min: 0, max: 3 }),
          interruptAfter: FastCheck.option(FastCheck.integer({ min: 0, max: 12 }), { nil: undefined }),
          scoped: FastCheck.boolean()
        }),
        { minLength: 1, maxLength: 24 }
      )
    })
    await FastCheck.assert(
      FastCheck.asyncProperty(scenario, ({ callers, limit }) =>
        Effect.runPromise(Effect.gen(function*() {
          const store = yield* ConcurrencyStore.makeMemory
          const slots = yield* Slots.makeWithStore({ limit, key, store })
          let held = 0
          let most = 0
          const hold = (turns: number) =>
            Effect.acquireUseRelease(
              Effect.sync(() => {
                held++
                most = Math.max(most, held)
              }),
              () => Effect.repeatN(Effect.yieldNow(), turns),
              () =>
                Effect.sync(() => {
                  held--
                })
            )
          const fibers = yield* Effect.forEach(callers, (caller) =>
            Effect.fork(
              caller.scoped
                ? Effect.scoped(Effect.zipRight(slots.takeScoped, hold(caller.holdFor)))
                : slots.withPermit(hold(caller.holdFor))
            ))
          yield* Effect.forEach(
            callers,
            (caller, i) =>
              caller.interruptAfter === undefined
                ? Effect.void
                : Effect.fork(
                  Effect.zipRight(Effect.repeatN(Effect.yieldNow(), caller.interruptAfter), Fiber.interrupt(fibers[i]!))
                ),
            { discard: true }
          )
          const exits = yield* Fiber.awaitAll(fibers)
          assert.isAtMost(most, limit)
          callers.forEach((caller, i) => {
            if (caller.interruptAfter === undefined) assert.isTrue(Exit.isSuccess(exits[i]!))
          })
          assert.strictEqual(held, 0)
          assert.strictEqual(slots.held, 0, "a slot was lost")
          assert.strictEqual(slots.waiting, 0)
          assert.strictEqual(yield* store.held(key), 0, "a lease was left behind")
        }))),
      { numRuns: 200 }
    )
  })
})
