import assert from "node:assert/strict";
import { parsePodLabels, WORKLOAD_TYPE_LABEL } from "./pod_labels.ts";

Deno.test("parses the downward-API labels file, escapes included", () => {
  const text = [
    'app.kubernetes.io/name="spark"',
    'dominodatalab.com/execution-id="646d27b817c28b5ea4b5b0c1"',
    `${WORKLOAD_TYPE_LABEL}="cluster-worker"`,
    'quoted="a \\"b\\" \\\\ c"',
    "garbage line",
    "",
  ].join("\n");
  const labels = parsePodLabels(text);
  assert.equal(labels.get(WORKLOAD_TYPE_LABEL), "cluster-worker");
  assert.equal(labels.get("dominodatalab.com/execution-id"), "646d27b817c28b5ea4b5b0c1");
  assert.equal(labels.get("quoted"), 'a "b" \\ c');
  assert.equal(labels.size, 4);
  assert.equal(parsePodLabels("").size, 0);
});
