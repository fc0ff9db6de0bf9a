import assert from "node:assert/strict";
import { createLogger } from "../lib/log.ts";
import { createServerMetrics } from "../observe/metrics.ts";
import { HANDED_ANNOTATION, RESULTS_ANNOTATION } from "./handoff.ts";
import { createHandoffGuard } from "./handoff_guard.ts";
import { importHandoffKey } from "./handoff_seal.ts";

const ROLE = "arn:aws:iam::111111111111:role/acme-list-bucket-role";
const SUBJECT = "*:domino-compute:run-000000000000000000000001";
const AT = 1_000_000;
const key = await importHandoffKey("a".repeat(32));

Deno.test("the guard logs each refusal once, as an audit line without the seal, and counts it", async () => {
  const lines: Record<string, unknown>[] = [];
  const metrics = createServerMetrics();
  const guard = createHandoffGuard({
    key,
    logger: createLogger({ write: (l) => lines.push(JSON.parse(l)) }),
    metrics,
    now: () => AT,
  });
  const forged = { id: "x/1", at: AT, add: SUBJECT, user: "mallory", mac: "A".repeat(43) };
  const lease = {
    name: "l",
    annotations: {
      [HANDED_ANNOTATION]: JSON.stringify([forged]),
      [RESULTS_ANNOTATION]: JSON.stringify({ "r1/1": { r: { status: "removed" }, t: AT } }),
    },
  };
  const seen = new Set<string>();
  const skip = new Set<string>();
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(await guard.handed(ROLE, lease, new Set(), seen), []);
    assert.deepEqual(await guard.believed(ROLE, ["r1/1"], lease, seen), {});
  }
  await guard.handed(ROLE, lease, skip, new Set());
  assert.deepEqual([...skip], ["x/1"], "what was refused leaves the Lease");
  assert.deepEqual(lines.slice(0, 2).map((l) => [l.msg, l.audit, l.role, l.id, l.reason]), [
    ["handed edit refused", true, ROLE, "x/1", "bad_seal"],
    ["handed result refused", true, ROLE, "r1/1", "unsealed"],
  ]);
  assert.ok(lines.every((l) => !JSON.stringify(l).includes("A".repeat(43))));
  assert.equal(metrics.handoffRefused.get({ what: "edit", reason: "bad_seal" }), 2);
  assert.equal(metrics.handoffRefused.get({ what: "result", reason: "unsealed" }), 1);
});
