import assert from "node:assert/strict";
import { createAuditTrail } from "./audit_trail.ts";
import { createLogger } from "../lib/log.ts";

Deno.test("the audit trail keeps the last audit lines only, and the logger still writes every line", () => {
  const lines: string[] = [];
  const trail = createAuditTrail(2, () => new Date(0));
  const logger = trail.wrap(createLogger({ write: (l) => lines.push(l) }));
  logger.info("not audit", { user: "x" });
  logger.info("one", { audit: true, user: "a" });
  logger.child({ request_id: "r" }).info("two", { audit: true });
  logger.info("three", { audit: true, role: "r3" });
  assert.equal(lines.length, 4);
  assert.deepEqual(trail.entries(), [
    { request_id: "r", time: "1970-01-01T00:00:00.000Z", msg: "two" },
    { role: "r3", time: "1970-01-01T00:00:00.000Z", msg: "three" },
  ]);
});
