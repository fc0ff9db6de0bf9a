import assert from "node:assert/strict";
import type { Lease } from "../kube/client.ts";
import {
  allRecorded,
  annotationsAfter,
  HANDED_ANNOTATION,
  handedOf,
  leaseName,
  recordedFor,
  RESULTS_ANNOTATION,
  resultsOf,
  ROLE_ANNOTATION,
  VERSION_ANNOTATION,
  withHanded,
} from "./handoff.ts";

const run = (i: number) => `*:domino-compute:run-${i.toString(16).padStart(24, "0")}`;
const ADDED = { status: "added" as const, length: 500, quota: 2048, subjects: 1 };

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

Deno.test("after a write, the edits it applied leave the Lease, the others stay, and results older than a minute go", () => {
  const at = 1_000_000;
  const lease: Lease = {
    name: "l",
    annotations: {
      [ROLE_ANNOTATION]: "arn:aws:iam::111111111111:role/r",
      [HANDED_ANNOTATION]: JSON.stringify([
        { id: "b/1", add: run(1), user: "u" },
        { id: "b/2", add: run(2), user: "u" },
      ]),
      [RESULTS_ANNOTATION]: JSON.stringify({
        "c/1": { r: ADDED, t: at - 60_000 },
        "c/2": { r: ADDED, t: at - 59_999 },
      }),
    },
  };
  const after = annotationsAfter(
    lease,
    new Set(["b/1"]),
    { "b/1": { r: ADDED, t: at } },
    undefined,
    at,
  );
  assert.equal(after[ROLE_ANNOTATION], "arn:aws:iam::111111111111:role/r");
  assert.equal(after[VERSION_ANNOTATION], undefined, "no version: the next holder reads IAM");
  const kept = { ...lease, annotations: after };
  assert.deepEqual(handedOf(kept).map((e) => e.id), ["b/2"]);
  assert.deepEqual(Object.keys(resultsOf(kept)), ["c/2", "b/1"]);
  const none = annotationsAfter(kept, new Set(["b/2"]), {}, "v", at + 60_000);
  assert.deepEqual(Object.keys(none).sort(), [ROLE_ANNOTATION, VERSION_ANNOTATION].sort());
});

Deno.test("edits are handed over after those handed before, until the annotation is full", () => {
  const holder: Lease = { name: "l", annotations: { [ROLE_ANNOTATION]: "r" } };
  const first = withHanded(holder, [{ id: "a/1", at: 0, add: run(1), user: "u" }])!;
  const second = withHanded({ ...holder, annotations: first }, [
    { id: "a/2", at: 0, remove: run(2), user: "u", run: "r2", requestId: "q" },
  ])!;
  assert.equal(second[ROLE_ANNOTATION], "r");
  assert.deepEqual(handedOf({ name: "l", annotations: second }), [
    { id: "a/1", at: 0, add: run(1), user: "u" },
    { id: "a/2", at: 0, remove: run(2), user: "u", run: "r2", requestId: "q" },
  ]);
  // About 120 KB of handed edits, a few hundred starts, is all a Lease takes.
  const crowd = Array.from(
    { length: 1300 },
    (_, i) => ({ id: `replica-dead/${i}`, at: 0, remove: run(5000 + i), user: "someone" }),
  );
  assert.equal(withHanded(holder, crowd), undefined);
  assert.ok(withHanded(holder, crowd.slice(0, 1000)));
});

Deno.test("a batch has its results once every edit of it was handed over and answered", () => {
  const results = { "a/1": { r: ADDED, t: 0 }, "a/2": { r: { status: "absent" as const }, t: 0 } };
  assert.deepEqual(recordedFor(2, ["a/1", "a/2"], results), [ADDED, { status: "absent" }]);
  assert.ok(allRecorded(recordedFor(2, ["a/1", "a/2"], results)));
  // Its third edit was never handed over, or its result is not there yet.
  assert.deepEqual(recordedFor(3, ["a/1", "a/2"], results), [
    ADDED,
    { status: "absent" },
    undefined,
  ]);
  assert.ok(!allRecorded(recordedFor(3, ["a/1", "a/2"], results)));
  assert.ok(!allRecorded(recordedFor(2, ["a/1", "a/3"], results)));
  assert.deepEqual(recordedFor(1, [], results), [undefined]);
});

Deno.test("a Lease on a role: a valid object name, the same for the same role, another for another", () => {
  const name = leaseName("arn:aws:iam::111111111111:role/acme-list-bucket-role");
  assert.match(name, /^irsa-role-acme-list-bucket-role-[0-9a-f]{8}$/);
  assert.equal(name, leaseName("arn:aws:iam::111111111111:role/acme-list-bucket-role"));
  assert.notEqual(name, leaseName("arn:aws:iam::222222222222:role/acme-list-bucket-role"));
  const odd = leaseName(`arn:aws:iam::111111111111:role/path/${"Upper_Case.Role@".repeat(8)}`);
  assert.match(odd, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  assert.ok(odd.length <= 63);
  assert.match(leaseName("arn:aws:iam::111111111111:role/___"), /^irsa-role-[0-9a-f]{8}$/);
});

Deno.test("annotations that are not JSON are read as nothing handed and no results", () => {
  const garbled: Lease = {
    name: "l",
    annotations: { [HANDED_ANNOTATION]: "{", [RESULTS_ANNOTATION]: "" },
  };
  assert.deepEqual(handedOf(garbled), []);
  assert.deepEqual(resultsOf(garbled), {});
});
