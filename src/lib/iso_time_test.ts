import assert from "node:assert/strict";
import fc from "fast-check";
import { isoTime } from "./iso_time.ts";

Deno.test("isoTime is toISOString for every time a Date holds", () => {
  const cases = [
    0,
    -1,
    1,
    951_782_400_000, // 2000-02-29
    4_107_542_399_999, // 2100-02-28T23:59:59.999Z
    -62_167_219_200_000, // 0000-01-01
    253_402_300_799_999, // 9999-12-31T23:59:59.999Z
    1_796_126_759_228.7, // fractions are cut toward zero, as Date does
    -1.5,
  ];
  for (const ms of cases) assert.equal(isoTime(ms), new Date(ms).toISOString(), String(ms));
  fc.assert(
    fc.property(fc.integer({ min: -8.64e15, max: 8.64e15 }), (ms) => {
      assert.equal(isoTime(ms), new Date(ms).toISOString());
    }),
    { numRuns: 20_000 },
  );
  // Near today, where every real time is.
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 4_102_444_800_000 }), (ms) => {
      assert.equal(isoTime(ms), new Date(ms).toISOString());
    }),
    { numRuns: 20_000 },
  );
  assert.throws(() => isoTime(NaN), RangeError);
  assert.throws(() => isoTime(8.64e15 + 1), RangeError);
});
