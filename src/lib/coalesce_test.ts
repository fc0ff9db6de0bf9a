import assert from "node:assert/strict";
import { coalesce } from "./coalesce.ts";

Deno.test("coalesce: the first call runs alone and at once; those asked meanwhile share the next", async () => {
  const calls: number[][] = [];
  const gates: PromiseWithResolvers<void>[] = [];
  const double = coalesce(async (xs: readonly number[]) => {
    calls.push([...xs]);
    const gate = Promise.withResolvers<void>();
    gates.push(gate);
    await gate.promise;
    return xs.map((x) => x * 2);
  });
  const first = double(1);
  assert.deepEqual(calls, [[1]]); // started synchronously: a lone caller does not wait
  const rest = [2, 3, 4].map(double);
  assert.deepEqual(calls, [[1]]); // not before the first call ends: it may have read too early
  gates[0].resolve();
  assert.equal(await first, 2);
  await Promise.resolve();
  assert.deepEqual(calls, [[1], [2, 3, 4]]);
  gates[1].resolve();
  assert.deepEqual(await Promise.all(rest), [4, 6, 8]);
  // Idle again: the next caller runs at once.
  const again = double(5);
  assert.deepEqual(calls.at(-1), [5]);
  gates[2].resolve();
  assert.equal(await again, 10);
});

Deno.test("coalesce: a failed call fails exactly its own callers, and the next call runs", async () => {
  let n = 0;
  const f = coalesce(async (xs: readonly string[]) => {
    await Promise.resolve();
    if (n++ === 1) throw new Error("boom");
    return xs.map((x) => x.toUpperCase());
  });
  const a = f("a");
  const [b, c] = [f("b"), f("c")];
  assert.equal(await a, "A");
  await assert.rejects(b, /boom/);
  await assert.rejects(c, /boom/);
  assert.equal(await f("d"), "D");
});
