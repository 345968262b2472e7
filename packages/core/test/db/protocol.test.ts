/**
 * The writer/compactor protocol under the faults that reach it: a scripted store fails or loses the reply
 * of one chosen request, and time is `TestClock` time. Each test here failed before the fix it names.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Exit, Fiber, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import { Db, ObjectStore } from "@opendata/core"
import { b, failureTag, s, small } from "./helpers.ts"

const addition: Db.MergeOperator = (_key, existing, operands) =>
  b(String(operands.reduce((sum, o) => sum + Number(s(o)), existing === undefined ? 0 : Number(s(existing)))))

type Operation = "get" | "head" | "put" | "putIfAbsent" | "putIfMatch" | "list" | "delete"

/**
 * What a rule does to the request it matches: `refuse` fails it with `Unavailable` before the store sees it;
 * `loseReply` lets the store handle it, then fails it (`OutcomeUnknown` for a conditional write).
 */
interface Rule {
  readonly operation: Operation
  readonly keyPrefix: string
  readonly action: "refuse" | "loseReply"
  /** Matches this many requests, then is spent. */
  times: number
  /** Skips this many matching requests first. */
  skip?: number
}

/** A view of a shared store that applies scripted rules to its requests; `clock` stamps what it stores. */
const scripted = (shared: ObjectStore.ObjectStoreShape, rules: Array<Rule>, clock?: Clock.Clock) => {
  const match = (operation: Operation, key: string) => {
    for (const rule of rules) {
      if (rule.operation !== operation || rule.times <= 0 || !key.startsWith(rule.keyPrefix)) continue
      if ((rule.skip ?? 0) > 0) {
        rule.skip! -= 1
        continue
      }
      rule.times -= 1
      return rule.action
    }
    return undefined
  }
  const unavailable = (operation: string, key: string) => new ObjectStore.Unavailable({ operation, key, reason: "scripted" })
  const stamped = <A, E>(self: Effect.Effect<A, E>) => (clock === undefined ? self : Effect.provideService(self, Clock.Clock, clock))
  const run = <A, E>(operation: Operation, key: string, self: Effect.Effect<A, E>, lost: () => unknown) =>
    Effect.suspend(() => {
      const action = match(operation, key)
      if (action === "refuse") return Effect.fail(unavailable(operation, key) as E)
      if (action === "loseReply") return Effect.andThen(Effect.exit(stamped(self)), Effect.fail(lost() as E))
      return stamped(self)
    })
  const store: ObjectStore.ObjectStoreShape = {
    ...shared,
    get: (k, r) => run("get", k, shared.get(k, r), () => unavailable("get", k)),
    head: (k) => run("head", k, shared.head(k), () => unavailable("head", k)),
    put: (k, body, o) => run("put", k, shared.put(k, body, o), () => unavailable("put", k)),
    putIfAbsent: (k, body, o) =>
      run("putIfAbsent", k, shared.putIfAbsent(k, body, o), () =>
        new ObjectStore.OutcomeUnknown({ operation: "putIfAbsent", key: k, putId: o?.putId ?? "?", reason: "scripted" })),
    putIfMatch: (k, body, e, o) =>
      run("putIfMatch", k, shared.putIfMatch(k, body, e, o), () =>
        new ObjectStore.OutcomeUnknown({ operation: "putIfMatch", key: k, putId: o?.putId ?? "?", reason: "scripted" })),
    listPage: (p, o) => run("list", p, shared.listPage(p, o), () => unavailable("list", p)),
    list: (p, o) => Stream.unwrap(run("list", p, Effect.succeed(shared.list(p, o)), () => unavailable("list", p))),
    delete: (k) => run("delete", k, shared.delete(k), () => unavailable("delete", k)),
    resolvePut: (k, id) => stamped(shared.resolvePut(k, id))
  }
  return store
}

const memoryStore = ObjectStore.ObjectStore.use(Effect.succeed).pipe(Effect.provide(ObjectStore.layerMemory))

/** Opens a Db (or follower, or compactor) on `store` in a scope of its own. */
const openOn = <A, E>(store: ObjectStore.ObjectStoreShape, make: Effect.Effect<A, E, ObjectStore.ObjectStore | Scope.Scope>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const exit = yield* make.pipe(Effect.provideService(ObjectStore.ObjectStore, store), Scope.provide(scope), Effect.exit)
    return { exit, close: Scope.close(scope, Exit.void) }
  })

const opened = <A, E>(o: { readonly exit: Exit.Exit<A, E> }) => {
  if (Exit.isFailure(o.exit)) throw new Error(`opening failed: ${String(o.exit.cause)}`)
  return o.exit.value
}

/** Lets virtual time flow (1 ms per scheduler round) while `self` runs, so retries' sleeps end. */
const flowing = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const clock = yield* Effect.forkChild(Effect.forever(Effect.andThen(TestClock.adjust("1 millis"), Effect.yieldNow)))
    const exit = yield* Effect.exit(self)
    yield* Fiber.interrupt(clock)
    return yield* exit
  })

const objectKeys = (store: ObjectStore.ObjectStoreShape, prefix: string) =>
  Effect.map(Stream.runCollect(store.list(prefix)), (entries) => entries.map((e) => e.key))

type Mutant = Db.SimulationMutant | undefined

/** An opener fails between putting its fence and recording it; a later writer collects past that fence. */
const unrecordedFence = (mutant: Mutant) =>
  Effect.gen(function*() {
    const shared = yield* memoryStore
    const settings: Db.DbSettings = { ...small, gcMinAgeMs: 0, simulationMutant: mutant }
    const a = yield* openOn(shared, Db.make(settings))
    const zombie = opened(a)
    yield* zombie.put(b("x"), b("1"))
    // A second writer puts its fence (slot 3), then fails to commit the manifest that records it.
    const failing = scripted(shared, [{ operation: "putIfAbsent", keyPrefix: "manifest/", action: "refuse", times: 100, skip: 1 }])
    const second = yield* openOn(failing, Db.make(settings))
    assert.strictEqual(failureTag(second.exit), "Unavailable")
    yield* second.close
    // A third writer replays that fence, writes, flushes past it and collects garbage.
    const c = yield* openOn(shared, Db.make(settings))
    const writer = opened(c)
    yield* writer.put(b("y"), b("2"))
    yield* writer.flush
    yield* writer.collectGarbage
    const wal = yield* objectKeys(shared, "wal/")
    assert.include(wal, "wal/00000000000000000003.wal", "the unrecorded fence of the failed opener is kept")
    // The zombie's next WAL write must collide with that fence, not land in a freed slot.
    assert.strictEqual(failureTag(yield* Effect.exit(zombie.put(b("z"), b("3")))), "Fenced")
    yield* c.close
    yield* a.close
  })

/** The commit of a flush lands; the listing after it fails, so the flush is retried. */
const flushRetriedAfterCommit = (mutant: Mutant) =>
  Effect.gen(function*() {
    const shared = yield* memoryStore
    const rules: Array<Rule> = []
    const settings: Db.DbSettings = { ...small, merge: addition, simulationMutant: mutant }
    const w = yield* openOn(scripted(shared, rules), Db.make(settings))
    const db = opened(w)
    yield* db.merge(b("k"), b("5"))
    yield* db.put(b("other"), b("x"))
    rules.push({ operation: "list", keyPrefix: "manifest/", action: "refuse", times: 1 })
    yield* db.flush
    assert.strictEqual(rules[0]!.times, 0, "the scripted fault was hit")
    assert.strictEqual((yield* db.stats).l0Tables, 1)
    assert.strictEqual(s(yield* db.get(b("k"))), "5")
    yield* db.merge(b("k"), b("1"))
    yield* db.flush
    while (yield* db.compact) {
      // compact everything: merging both copies of a table used to fail on a duplicate (key, seq)
    }
    assert.strictEqual(s(yield* db.get(b("k"))), "6")
    yield* w.close
    const again = yield* openOn(shared, Db.make(settings))
    assert.strictEqual(s(yield* opened(again).get(b("k"))), "6")
    yield* again.close
  })

/** The reply of a WAL write is lost after the store took it; the writer retries the same slot. */
const walReplyLost = (mutant: Mutant) =>
  Effect.gen(function*() {
    const shared = yield* memoryStore
    const rules: Array<Rule> = []
    const settings: Db.DbSettings = { ...small, simulationMutant: mutant }
    const w = yield* openOn(scripted(shared, rules), Db.make(settings))
    const db = opened(w)
    rules.push({ operation: "putIfAbsent", keyPrefix: "wal/", action: "loseReply", times: 1 })
    const exit = yield* Effect.exit(db.put(b("k"), b("v")))
    assert.strictEqual(rules[0]!.times, 0, "the scripted fault was hit")
    assert.strictEqual(failureTag(exit), "ok")
    yield* db.put(b("k2"), b("v2"))
    yield* w.close
    const again = yield* openOn(shared, Db.make(settings))
    assert.strictEqual(s(yield* opened(again).get(b("k"))), "v")
    assert.strictEqual(s(yield* opened(again).get(b("k2"))), "v2")
    yield* again.close
  })

/** Tables that were in the latest manifest for `latestFor`, replaced by a compaction just now. */
const supersededJustNow = (mutant: Mutant, latestFor: "2 hours" | "1 second", writerClock: (clock: Clock.Clock) => Clock.Clock) =>
  Effect.gen(function*() {
    const shared = yield* memoryStore
    const trueClock = yield* Clock.Clock
    const settings: Db.DbSettings = { ...small, gcMinAgeMs: 60_000, l0CompactionTrigger: 2, compactor: false, simulationMutant: mutant }
    // The writer's process runs on its own clock; the store stamps objects with the true one.
    const local = <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.provideService(self, Clock.Clock, writerClock(trueClock))
    const w = yield* openOn(scripted(shared, [], trueClock), local(Db.make(settings)))
    const db = opened(w)
    yield* db.put(b("a"), b("1"))
    yield* db.flush
    yield* db.put(b("b"), b("1"))
    yield* db.flush
    yield* TestClock.adjust(latestFor)
    const f = yield* openOn(shared, Db.makeFollower({ pollIntervalMs: 3_600_000 }))
    const follower = opened(f)
    // The follower reads the manifest that was the latest for two hours; a compaction replaces it now.
    assert.isTrue(yield* local(db.compact))
    yield* local(db.collectGarbage)
    // Superseded a moment ago: the follower's view must still read, for the lease (60 s).
    const exit = yield* Effect.exit(follower.get(b("a")))
    assert.strictEqual(failureTag(exit), "ok")
    if (Exit.isSuccess(exit)) assert.strictEqual(s(exit.value), "1")
    yield* TestClock.adjust("2 minutes")
    // Past the lease, the replaced tables go.
    assert.isAbove(yield* local(db.collectGarbage), 0)
    yield* f.close
    yield* w.close
  })

const sameClock = (clock: Clock.Clock) => clock
/** A clock two hours ahead of the store's. */
const aheadTwoHours = (clock: Clock.Clock): Clock.Clock => ({
  ...clock,
  currentTimeMillisUnsafe: () => clock.currentTimeMillisUnsafe() + 7_200_000,
  currentTimeMillis: Effect.map(clock.currentTimeMillis, (t) => t + 7_200_000),
  currentTimeNanosUnsafe: () => clock.currentTimeNanosUnsafe() + 7_200_000_000_000n,
  currentTimeNanos: Effect.map(clock.currentTimeNanos, (t) => t + 7_200_000_000_000n),
  sleep: (d) => clock.sleep(d)
})

/** Each scenario, with the simulation mutant that reverts its fix. */
const scenarios: ReadonlyArray<{ readonly name: string; readonly run: (mutant: Mutant) => Effect.Effect<void, unknown>; readonly mutant: Db.SimulationMutant }> = [
  { name: "bug 1: a fence whose opener failed before recording it stays protected, so a zombie stays fenced", run: unrecordedFence, mutant: "unrecorded-fences" },
  { name: "bug 2: a flush retried after its manifest commit landed adds the memtable to level 0 once", run: flushRetriedAfterCommit, mutant: "flush-not-idempotent" },
  { name: "bug 3: a WAL write whose reply was lost is recognised as ours on retry, not as a newer writer's fence", run: walReplyLost, mutant: "forget-ambiguous-put" },
  { name: "bug 4: the GC lease counts from when a manifest was superseded, not from its creation", run: (m) => supersededJustNow(m, "2 hours", sameClock), mutant: "gc-lease-from-creation" },
  { name: "bug 4: garbage collection takes now from the store, not from a skewed local clock", run: (m) => supersededJustNow(m, "1 second", aheadTwoHours), mutant: "gc-lease-from-creation" }
]

describe("Db protocol under scripted faults", () => {
  for (const scenario of scenarios) {
    it.effect(scenario.name, () => flowing(scenario.run(undefined)))
    it.effect(`${scenario.name.split(":")[0]}: fails with its fix reverted (mutant ${scenario.mutant})`, () =>
      Effect.gen(function*() {
        const exit = yield* Effect.exit(flowing(scenario.run(scenario.mutant)))
        assert.isTrue(Exit.isFailure(exit), "the scenario passed with its fix reverted: it tests nothing")
      }))
  }

  it.effect("a writer's garbage collection that finds a newer writer fails with Fenced and stops the Db", () =>
    flowing(Effect.gen(function*() {
      const shared = yield* memoryStore
      const a = yield* openOn(shared, Db.make({ ...small, gcMinAgeMs: 0 }))
      const old = opened(a)
      yield* old.put(b("x"), b("1"))
      const c = yield* openOn(shared, Db.make({ ...small, gcMinAgeMs: 0 }))
      opened(c)
      assert.strictEqual(failureTag(yield* Effect.exit(old.collectGarbage)), "Fenced")
      assert.strictEqual(failureTag(yield* Effect.exit(old.put(b("y"), b("2")))), "Fenced")
      yield* c.close
      yield* a.close
    })))

  it.effect("a compaction retried after its commit landed does not merge its inputs again", () =>
    flowing(Effect.gen(function*() {
      const shared = yield* memoryStore
      const rules: Array<Rule> = []
      const w = yield* openOn(scripted(shared, rules), Db.make({ ...small, merge: addition, l0CompactionTrigger: 2, compactor: false }))
      const db = opened(w)
      yield* db.merge(b("k"), b("5"))
      yield* db.flush
      yield* db.merge(b("k"), b("2"))
      yield* db.flush
      rules.push({ operation: "list", keyPrefix: "manifest/", action: "refuse", times: 1 })
      const first = yield* Effect.exit(db.compact)
      assert.strictEqual(rules[0]!.times, 0, "the scripted fault was hit")
      if (Exit.isFailure(first)) assert.strictEqual(failureTag(first), "Unavailable")
      while (yield* db.compact) {
        // a retry must see that its own change landed
      }
      assert.strictEqual(s(yield* db.get(b("k"))), "7")
      yield* db.put(b("z"), b("1"))
      yield* db.flush
      assert.strictEqual(s(yield* db.get(b("k"))), "7")
      yield* w.close
    })))

  it.effect("a table write whose reply was lost is recognised as ours on retry", () =>
    flowing(Effect.gen(function*() {
      const shared = yield* memoryStore
      const rules: Array<Rule> = []
      const w = yield* openOn(scripted(shared, rules), Db.make(small))
      const db = opened(w)
      yield* db.put(b("k"), b("v"))
      rules.push({ operation: "putIfAbsent", keyPrefix: "sst/", action: "loseReply", times: 1 })
      assert.strictEqual(failureTag(yield* Effect.exit(db.flush)), "ok")
      assert.strictEqual(rules[0]!.times, 0, "the scripted fault was hit")
      assert.strictEqual((yield* db.stats).l0Tables, 1)
      yield* db.put(b("k2"), b("v2"))
      assert.strictEqual(failureTag(yield* Effect.exit(db.flush)), "ok")
      yield* w.close
    })))
})
