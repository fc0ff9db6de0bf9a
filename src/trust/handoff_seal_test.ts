import assert from "node:assert/strict";
import {
  HANDED_MAX_AGE_MS,
  importHandoffKey,
  openEdits,
  openResults,
  sealEdits,
  sealResults,
} from "./handoff_seal.ts";

const ROLE = "arn:aws:iam::111111111111:role/acme-list-bucket-role";
const OTHER = "arn:aws:iam::111111111111:role/acme-admin-role";
const SUBJECT = "*:domino-compute:run-000000000000000000000001";
const AT = 1_000_000;
const key = await importHandoffKey("a".repeat(32));

Deno.test("a sealed edit opens on its role, and no longer once any of its fields changed", async () => {
  const [edit] = await sealEdits(key, ROLE, [{ id: "r1/1", at: AT, add: SUBJECT, user: "jdoe" }]);
  assert.deepEqual((await openEdits(key, ROLE, [edit], {}, AT)).valid, [edit]);
  const changed = [
    { ...edit, add: "*:domino-compute:run-00000000000000000000029a" },
    { ...edit, add: undefined, remove: SUBJECT },
    { ...edit, user: "mallory" },
    { ...edit, id: "r1/2" },
    { ...edit, at: AT + 1 },
  ];
  const opened = await openEdits(key, ROLE, changed, {}, AT);
  assert.deepEqual(opened.valid, []);
  assert.deepEqual(opened.refused.map((r) => r.reason), Array(5).fill("bad_seal"));
  // Copied onto another role's Lease, or sealed under another key.
  assert.equal((await openEdits(key, OTHER, [edit], {}, AT)).refused[0].reason, "bad_seal");
  const other = await importHandoffKey("b".repeat(32));
  assert.equal((await openEdits(other, ROLE, [edit], {}, AT)).refused[0].reason, "bad_seal");
});

Deno.test("an edit without a seal, of the wrong shape, too old, or already answered is refused", async () => {
  const [edit] = await sealEdits(key, ROLE, [{ id: "r1/1", at: AT, add: SUBJECT, user: "jdoe" }]);
  const { mac: _, ...unsealed } = edit;
  const reasons = async (entries: unknown[], now = AT, results = {}) =>
    (await openEdits(key, ROLE, entries, results, now)).refused.map((r) => r.reason);
  assert.deepEqual(await reasons([unsealed]), ["unsealed"]);
  assert.deepEqual(await reasons([null, 3, { id: "x", add: 5, user: "u", at: AT }]), [
    "malformed",
    "malformed",
    "malformed",
  ]);
  assert.deepEqual(await reasons([edit], AT + HANDED_MAX_AGE_MS + 1), ["stale"]);
  const [answered] = Object.values(
    await sealResults(key, ROLE, { "r1/1": { r: { status: "added" }, t: AT } }),
  );
  assert.deepEqual(await reasons([edit], AT, { "r1/1": answered }), ["replayed"]);
  // The same edit twice is applied once.
  assert.equal((await openEdits(key, ROLE, [edit, edit], {}, AT)).valid.length, 1);
});

Deno.test("a result is believed only for the edit and role it was sealed for", async () => {
  const sealed = await sealResults(key, ROLE, {
    "r1/1": { r: { status: "removed", length: 300, quota: 2048, subjects: 0 }, t: AT },
  });
  assert.deepEqual((await openResults(key, ROLE, ["r1/1"], sealed)).valid, sealed);
  const moved = { "r1/2": sealed["r1/1"] };
  assert.equal((await openResults(key, ROLE, ["r1/2"], moved)).refused[0].reason, "bad_seal");
  assert.equal((await openResults(key, OTHER, ["r1/1"], sealed)).refused[0].reason, "bad_seal");
  const lied = { "r1/1": { ...sealed["r1/1"], r: { status: "removed" as const } } };
  assert.equal((await openResults(key, ROLE, ["r1/1"], lied)).refused[0].reason, "bad_seal");
  const bare = { "r1/1": { r: { status: "removed" as const }, t: AT } };
  assert.equal((await openResults(key, ROLE, ["r1/1"], bare)).refused[0].reason, "unsealed");
});

Deno.test("a key shorter than 32 bytes is refused", async () => {
  await assert.rejects(() => importHandoffKey(" short \n"), /it is 5 bytes long, under the 32/);
});
