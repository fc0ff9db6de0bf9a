import assert from "node:assert/strict";
import { annotationsAfter, RESULTS_ANNOTATION, VERSION_ANNOTATION } from "./handoff.ts";

Deno.test("the results left on a Lease stay within its annotation budget, newest first, however long their messages", () => {
  const at = 1_000_000;
  const failure = {
    status: "failed" as const,
    error: { code: "policy_quota_exceeded", message: "x".repeat(400) },
  };
  const fresh = Object.fromEntries(
    Array.from({ length: 800 }, (_, i) => [`replica-a/${i}`, { r: failure, t: at }]),
  );
  const annotations = annotationsAfter({ name: "l" }, new Set(), fresh, "v2", at);
  const results = JSON.parse(annotations[RESULTS_ANNOTATION]) as Record<string, unknown>;
  // 800 of these are about 370 KB, over the 256 KiB Kubernetes allows for all annotations.
  assert.ok(annotations[RESULTS_ANNOTATION].length <= 100_000 + 2);
  assert.ok(Object.keys(results).length > 100);
  assert.ok("replica-a/799" in results, "the newest result is kept");
  assert.ok(!("replica-a/0" in results), "the oldest went first");
  assert.equal(annotations[VERSION_ANNOTATION], "v2");
});
