import { assert, describe, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import * as Core from "../../src/internal/concurrencyCore.js"

const LEASE = 30_000

describe("concurrencyCore", () => {
  it("admits up to the limit, then refuses without taking anything", () => {
    let leases = Core.empty
    const granted: Array<boolean> = []
    for (const id of ["a", "b", "c"]) {
      const [next, ok] = Core.admit(leases, id, 0, 2, LEASE)
      granted.push(ok)
      leases = next
    }
    assert.deepStrictEqual(granted, [true, true, false])
    assert.deepStrictEqual([...leases.keys()], ["a", "b"])
  })

  it("a lease id asking again keeps its one slot, renewed", () => {
    const [one] = Core.admit(Core.empty, "a", 0, 1, LEASE)
    const [again, ok] = Core.admit(one, "a", 10_000, 1, LEASE)
    assert.isTrue(ok, "at the limit, but it is its own slot")
    assert.strictEqual(again.size, 1)
    assert.strictEqual(again.get("a"), 40_000)
  })

  it("a lease not renewed expires at its time, and its slot comes back", () => {
    const [held] = Core.admit(Core.empty, "crashed", 0, 1, LEASE)
    assert.isFalse(Core.admit(held, "next", LEASE - 1, 1, LEASE)[1])
    assert.strictEqual(Core.held(held, LEASE - 1), 1)
    assert.strictEqual(Core.held(held, LEASE), 0)
    const [after, ok] = Core.admit(held, "next", LEASE, 1, LEASE)
    assert.isTrue(ok)
    assert.deepStrictEqual([...after.keys()], ["next"])
  })

  it("renewing keeps a slot past its first expiry; a lease already expired is not brought back", () => {
    const [held] = Core.admit(Core.empty, "a", 0, 1, LEASE)
    const [renewed, ok] = Core.renew(held, "a", 20_000, LEASE)
    assert.isTrue(ok)
    assert.isFalse(Core.admit(renewed, "b", 45_000, 1, LEASE)[1], "still held at 45 s")
    const [lost, late] = Core.renew(renewed, "a", 50_000, LEASE)
    assert.isFalse(late)
    assert.strictEqual(lost.size, 0)
    assert.isFalse(Core.renew(Core.empty, "never", 0, LEASE)[1])
  })

  it("a release frees the slot; releasing again, or a lease not held, changes nothing", () => {
    const [held] = Core.admit(Core.empty, "a", 0, 1, LEASE)
    const released = Core.release(held, "a")
    assert.strictEqual(released.size, 0)
    assert.strictEqual(Core.release(released, "a"), released)
    assert.strictEqual(Core.release(held, "other"), held)
  })

  it("the functions leave their input as it was", () => {
    const [held] = Core.admit(Core.empty, "a", 0, 2, LEASE)
    Core.admit(held, "b", 0, 2, LEASE)
    Core.renew(held, "a", 10_000, LEASE)
    Core.release(held, "a")
    Core.expire(held, LEASE)
    assert.deepStrictEqual([...held], [["a", LEASE]])
    assert.strictEqual(Core.empty.size, 0)
  })

  it("against a model: never more than `limit` live leases, and every answer as the model gives it", () =>
    FastCheck.assert(
      FastCheck.property(
        FastCheck.integer({ min: 1, max: 4 }),
        FastCheck.integer({ min: 1, max: 50 }),
        FastCheck.array(
          FastCheck.record({
            op: FastCheck.constantFrom("admit", "renew", "release", "wait"),
            id: FastCheck.integer({ min: 0, max: 5 }),
            millis: FastCheck.integer({ min: 0, max: 40 })
          }),
          { maxLength: 80 }
        ),
        (limit, leaseMillis, steps) => {
          let leases = Core.empty
          // The model: a list of (id, expiry), live while now < expiry.
          let model: Array<{ id: string; expiry: number }> = []
          let now = 0
          for (const { id: n, millis, op } of steps) {
            const id = `lease-${n}`
            model = model.filter((lease) => lease.expiry > now)
            const holds = model.some((lease) => lease.id === id)
            if (op === "wait") {
              now += millis
              continue
            }
            if (op === "release") {
              leases = Core.release(leases, id)
              model = model.filter((lease) => lease.id !== id)
            } else {
              const expected = op === "admit" ? holds || model.length < limit : holds
              const [next, answer] = op === "admit"
                ? Core.admit(leases, id, now, limit, leaseMillis)
                : Core.renew(leases, id, now, leaseMillis)
              assert.strictEqual(answer, expected, `${op} ${id} at ${now}`)
              if (expected) model = [...model.filter((lease) => lease.id !== id), { id, expiry: now + leaseMillis }]
              leases = next
            }
            assert.strictEqual(Core.held(leases, now), model.length)
            assert.isAtMost(Core.held(leases, now), limit)
            assert.deepStrictEqual(
              [...Core.expire(leases, now)].sort(),
              model.map((lease) => [lease.id, lease.expiry]).sort()
            )
          }
        }
      )
    ))
})
