import assert from "node:assert/strict";
import { captureConsole, createLogger } from "./log.ts";

Deno.test("captureConsole turns console output into JSON lines of the logger, and gives it back", () => {
  const lines: string[] = [];
  const logger = createLogger({ write: (l) => lines.push(l), level: "debug" });
  const written: unknown[][] = [];
  const target = {
    debug: (...a: unknown[]) => written.push(a),
    log: (...a: unknown[]) => written.push(a),
    info: (...a: unknown[]) => written.push(a),
    warn: (...a: unknown[]) => written.push(a),
    error: (...a: unknown[]) => written.push(a),
    trace: (...a: unknown[]) => written.push(a),
  } as unknown as Console;
  const restore = captureConsole(logger, target);
  target.warn("Deno.serve: request.signal aborts on successful responses (legacy behavior).");
  target.error("failed:", { code: 7 });
  target.log("plain");
  assert.deepEqual(written, []);
  const parsed = lines.map((l) => JSON.parse(l));
  assert.deepEqual(parsed.map((l) => [l.level, l.msg, l.source]), [
    ["warn", "console output", "console"],
    ["error", "console output", "console"],
    ["info", "console output", "console"],
  ]);
  assert.match(parsed[0].text, /^Deno\.serve: request\.signal aborts/);
  assert.equal(parsed[1].text, "failed: { code: 7 }");
  restore();
  target.warn("after");
  assert.deepEqual(written, [["after"]]);
  assert.equal(lines.length, 3);
});
