import assert from "node:assert/strict";
import { AppError } from "../lib/errors.ts";
import { editTrustPolicy, subjectsOf } from "../core/trust_policy.ts";
import { createLogger, silentLogger } from "../lib/log.ts";
import { createServerMetrics } from "../observe/metrics.ts";
import { createLeaseRoleLock } from "./role_lock.ts";
import { leaseName } from "./handoff.ts";
import { createTrustEditor } from "./trust_editor.ts";
import { createKubeClient } from "../kube/client.ts";
import { sharedKubeApiServer } from "../../tests/fixtures/kube_apiserver.ts";
import { AUDIT, FRESH, HOST, OPTS, ROLE, run } from "../../tests/fixtures/example_trust.ts";
import { editorWith, fakeIam } from "../../tests/fixtures/trust_editors.ts";

Deno.test("simultaneous starts on one role are coalesced: O(1) IAM calls, each request its own outcome", async () => {
  const iam = fakeIam();
  const { editor, metrics } = editorWith(iam);
  const outcomes = await Promise.all(
    Array.from({ length: 25 }, (_, i) => editor.edit(ROLE, { add: run(i) }, AUDIT)),
  );
  assert.deepEqual(new Set(outcomes.map((o) => o.status)), new Set(["added"]));
  assert.equal(subjectsOf(iam.policies.get("acme-list-bucket-role")!, OPTS).length, 25);
  // The batch is taken once the role is read, so the 24 that queued during the read join it.
  assert.equal(iam.count("GetRole"), 1);
  assert.equal(iam.count("UpdateAssumeRolePolicy"), 1);
  assert.ok(metrics.batchSize.render().includes("irsa_trust_policy_batch_size_count 1"));
});

Deno.test("a subject already present costs no IAM call at all", async () => {
  const iam = fakeIam();
  const { editor, metrics } = editorWith(iam);
  await editor.edit(ROLE, { add: run(1) }, AUDIT);
  const calls = iam.calls.length;
  const again = await editor.edit(ROLE, { add: run(1) }, AUDIT);
  assert.equal(again.status, "present");
  assert.equal(iam.calls.length, calls);
  assert.equal(metrics.cacheHits.get(), 1);
});

Deno.test("an add and a remove of one subject in one batch: the later request wins", async () => {
  const iam = fakeIam();
  const { editor } = editorWith(iam);
  const first = editor.edit(ROLE, { add: run(9) }, AUDIT); // Starts an edit alone.
  const [add, remove] = await Promise.all([
    editor.edit(ROLE, { add: run(1) }, AUDIT),
    editor.edit(ROLE, { remove: run(1) }, AUDIT),
  ]);
  await first;
  assert.equal(add.status, "absent");
  assert.equal(remove.status, "absent");
  assert.deepEqual(subjectsOf(iam.policies.get("acme-list-bucket-role")!, OPTS), [run(9)]);
});

Deno.test("a batch that does not fit admits the earliest requests and tells the rest why", async () => {
  const iam = fakeIam(0);
  const { editor, metrics } = editorWith(iam);
  await Promise.all(
    Array.from({ length: 30 }, (_, i) => editor.edit(ROLE, { add: run(i) }, AUDIT)),
  );
  const blocker = editor.edit(ROLE, { add: run(100) }, AUDIT);
  const later = await Promise.all(
    Array.from({ length: 5 }, (_, i) => editor.edit(ROLE, { add: run(200 + i) }, AUDIT)),
  );
  const first = await blocker;
  const statuses = [first, ...later].map((o) => o.status);
  const added = statuses.filter((s) => s === "added").length;
  assert.ok(added >= 1 && added < 6, statuses.join());
  assert.deepEqual(statuses.slice(0, added), Array(added).fill("added"), "the earliest win");
  for (const o of [first, ...later].filter((x) => x.status === "failed")) {
    assert.equal(o.error?.code, "policy_quota_exceeded");
    assert.match(o.error!.message, /over its quota of 2048/);
  }
  assert.ok(iam.policies.get("acme-list-bucket-role")!.length <= 2048);
  assert.equal(metrics.poolFull.get(), 6 - added);
});

Deno.test("each write is one audit line: a batch names its requests, what it added and removed; the cleanup's names no added subjects", async () => {
  const iam = fakeIam(0);
  const lines: string[] = [];
  const editor = createTrustEditor({
    roles: iam,
    oidcProvider: HOST,
    audience: "sts.amazonaws.com",
    format: "wildcard",
    quota: 2048,
    logger: createLogger({ write: (l) => lines.push(l) }),
    metrics: createServerMetrics(),
  });
  await editor.edit(ROLE, { add: run(1) }, { user: "jdoe", run: "r1", requestId: "q1" });
  await editor.edit(ROLE, { add: run(1) }, AUDIT); // present: no write, no line
  await editor.prune(ROLE, () => Promise.resolve([run(1)]), { user: "irsa-cleanup" });
  const audit = lines.map((l) => JSON.parse(l)).filter((l) => l.audit === true);
  const { time: _t, ...batch } = audit[0];
  const { time: _u, ...cleanup } = audit[1];
  assert.equal(audit.length, 2);
  assert.deepEqual(batch, {
    level: "info",
    msg: "trust policy changed",
    audit: true,
    role: ROLE,
    requests: [{ action: "add", user: "jdoe", run: "r1", request_id: "q1" }],
    added: [run(1)],
    removed: [],
    subjects_before: [],
    subjects_after: [run(1)],
    policy_length: editTrustPolicy(FRESH, { add: [run(1)] }, OPTS).length,
    policy_quota: 2048,
  });
  assert.deepEqual(Object.keys(cleanup), Object.keys(batch).filter((k) => k !== "added"));
  assert.deepEqual(cleanup.requests, [{ action: "cleanup", user: "irsa-cleanup" }]);
  assert.deepEqual(cleanup.removed, [run(1)]);
});

/** Two replicas' editors of one IAM, each with its Leases in a fresh field namespace. */
async function twoReplicas() {
  const cluster = await sharedKubeApiServer();
  const field = await cluster.createNamespace("field");
  const kube = createKubeClient({
    apiUrl: cluster.url,
    token: () => cluster.adminToken,
    caCert: cluster.caCert,
  });
  const iam = fakeIam(0);
  const lock = (identity: string) =>
    createLeaseRoleLock({ kube, namespace: field, identity, logger: silentLogger });
  return {
    cluster,
    field,
    iam,
    a: editorWith(iam, lock("replica-a")),
    b: editorWith(iam, lock("replica-b")),
    [Symbol.dispose]: () => kube.close(),
  };
}

Deno.test("the cache never claims a subject another replica removed (versions on the role's Lease)", async () => {
  using replicas = await twoReplicas();
  const { cluster, field, iam, a, b } = replicas;
  assert.equal((await a.editor.edit(ROLE, { add: run(1) }, AUDIT)).status, "added");
  assert.equal((await a.editor.edit(ROLE, { add: run(1) }, AUDIT)).status, "present");
  assert.equal(a.metrics.cacheHits.get(), 1, "replica A answers from its cache");
  assert.equal((await b.editor.edit(ROLE, { remove: run(1) }, AUDIT)).status, "removed");
  // A's cache still holds the subject, but the Lease's version moved: A must go to IAM and add it back.
  const again = await a.editor.edit(ROLE, { add: run(1) }, AUDIT);
  assert.equal(again.status, "added");
  assert.equal(a.metrics.cacheHits.get(), 1);
  assert.deepEqual(subjectsOf(iam.policies.get("acme-list-bucket-role")!, OPTS), [run(1)]);
  const name = leaseName(ROLE);
  const lease = await cluster.must(
    "GET",
    `/apis/coordination.k8s.io/v1/namespaces/${field}/leases/${name}`,
  );
  assert.equal(lease.spec.holderIdentity, undefined, "released after each edit");
});

Deno.test("an add to a role another replica filled is refused from IAM's policy without taking the role's Lease", async () => {
  using replicas = await twoReplicas();
  const { cluster, field, iam, a, b } = replicas;
  assert.equal((await a.editor.edit(ROLE, { add: run(1) }, AUDIT)).status, "added");
  // B fills the role: A's cache still shows it with room for dozens more.
  const filled = await Promise.all(
    Array.from({ length: 60 }, (_, i) => b.editor.edit(ROLE, { add: run(i + 2) }, AUDIT)),
  );
  assert.ok(filled.some((o) => o.status === "failed"), "the role is full");
  const lease = () =>
    cluster.must(
      "GET",
      `/apis/coordination.k8s.io/v1/namespaces/${field}/leases/${leaseName(ROLE)}`,
    );
  const version = (await lease()).metadata.resourceVersion;
  const writes = iam.count("UpdateAssumeRolePolicy");
  const refused = await a.editor.edit(ROLE, { add: run(100) }, AUDIT);
  assert.equal(refused.status, "failed");
  assert.equal(refused.error?.code, "policy_quota_exceeded");
  assert.equal((await lease()).metadata.resourceVersion, version, "the Lease was not taken");
  assert.equal(iam.count("UpdateAssumeRolePolicy"), writes);
  // A role with room is still edited under its Lease, as before.
  assert.equal((await b.editor.edit(ROLE, { remove: run(2) }, AUDIT)).status, "removed");
  assert.equal((await a.editor.edit(ROLE, { add: run(100) }, AUDIT)).status, "added");
});

Deno.test("the cleanup takes a role's Lease only when it finds something to remove, and then removes from IAM's policy", async () => {
  using replicas = await twoReplicas();
  const { cluster, field, iam, a, b } = replicas;
  assert.equal((await a.editor.edit(ROLE, { add: run(1) }, AUDIT)).status, "added");
  const version = async () =>
    (await cluster.must(
      "GET",
      `/apis/coordination.k8s.io/v1/namespaces/${field}/leases/${leaseName(ROLE)}`,
    )).metadata.resourceVersion;
  const before = await version();
  const nothing = await a.editor.prune(ROLE, () => Promise.resolve([]), { user: "irsa-cleanup" });
  assert.deepEqual(nothing, []);
  assert.equal(await version(), before, "nothing to remove: the Lease was not taken");
  // B adds run 2 after A cached the policy: A's look sees the version move and reads IAM.
  assert.equal((await b.editor.edit(ROLE, { add: run(2) }, AUDIT)).status, "added");
  const seen: string[][] = [];
  const removed = await a.editor.prune(ROLE, (subjects) => {
    seen.push([...subjects]);
    return Promise.resolve(subjects.filter((s) => s === run(2)));
  }, { user: "irsa-cleanup" });
  assert.deepEqual(removed, [run(2)]);
  assert.deepEqual(seen, [[run(1), run(2)], [run(1), run(2)]], "asked again under the Lease");
  assert.deepEqual(subjectsOf(iam.policies.get("acme-list-bucket-role")!, OPTS), [run(1)]);
});

Deno.test("with a window, a burst on one role is one read and one write, the first request included", async () => {
  const burst = async (windowMs: number) => {
    const iam = fakeIam(0);
    const { editor } = editorWith(iam, undefined, undefined, { windowMs });
    const first = editor.edit(ROLE, { add: run(0) }, AUDIT);
    // The rest arrive 5 ms later, after an instant read of the role.
    await new Promise((r) => setTimeout(r, 5));
    const rest = Array.from(
      { length: 24 },
      (_, i) => editor.edit(ROLE, { add: run(i + 1) }, AUDIT),
    );
    const outcomes = await Promise.all([first, ...rest]);
    assert.deepEqual(new Set(outcomes.map((o) => o.status)), new Set(["added"]));
    assert.equal(subjectsOf(iam.policies.get("acme-list-bucket-role")!, OPTS).length, 25);
    return { reads: iam.count("GetRole"), writes: iam.count("UpdateAssumeRolePolicy") };
  };
  assert.deepEqual(await burst(0), { reads: 1, writes: 2 }, "without a window the first is alone");
  assert.deepEqual(await burst(40), { reads: 1, writes: 1 });
});

Deno.test("an edit with `after` joins its batch at once, is written only once `after` is done, and fails alone with its error", async () => {
  const iam = fakeIam(0);
  const { editor } = editorWith(iam);
  const recorded = Promise.withResolvers<void>();
  const refused = Promise.withResolvers<void>();
  const waiting = editor.edit(ROLE, { add: run(1) }, AUDIT, { after: recorded.promise });
  const failing = editor.edit(ROLE, { add: run(2) }, AUDIT, { after: refused.promise });
  const plain = editor.edit(ROLE, { add: run(3) }, AUDIT);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(iam.count("UpdateAssumeRolePolicy"), 0, "nothing written before `after` is done");
  refused.reject(new AppError("unavailable", "grant record unreadable"));
  recorded.resolve();
  const outcomes = await Promise.all([waiting, failing, plain]);
  assert.deepEqual(outcomes.map((o) => o.status), ["added", "failed", "added"]);
  assert.deepEqual(outcomes[1].error, { code: "unavailable", message: "grant record unreadable" });
  assert.equal(iam.count("UpdateAssumeRolePolicy"), 1, "one write for the batch");
  assert.deepEqual(subjectsOf(iam.policies.get("acme-list-bucket-role")!, OPTS), [run(1), run(3)]);
});

Deno.test("a batch whose window ends while announced starts are being proven waits for them, up to the longest window", async () => {
  const iam = fakeIam(0);
  const { editor } = editorWith(iam, undefined, undefined, { windowMs: 20, maxWindowMs: 200 });
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  // A start still being proven when the first edit's window (20 ms) ends joins its batch.
  const late = editor.arriving();
  const first = editor.edit(ROLE, { add: run(1) }, AUDIT);
  await sleep(60);
  const second = editor.edit(ROLE, { add: run(2) }, AUDIT);
  late();
  late(); // a second call does nothing
  assert.deepEqual((await Promise.all([first, second])).map((o) => o.status), ["added", "added"]);
  assert.equal(iam.count("UpdateAssumeRolePolicy"), 1, "one write for both");
  // One that never comes holds a batch no longer than the longest window.
  const never = editor.arriving();
  const t0 = performance.now();
  assert.equal((await editor.edit(ROLE, { add: run(3) }, AUDIT)).status, "added");
  const waited = performance.now() - t0;
  assert.ok(waited >= 190 && waited < 1000, `waited ${waited} ms`);
  never();
  // Without announced starts, the window alone.
  const t1 = performance.now();
  assert.equal((await editor.edit(ROLE, { add: run(4) }, AUDIT)).status, "added");
  assert.ok(performance.now() - t1 < 150);
});
