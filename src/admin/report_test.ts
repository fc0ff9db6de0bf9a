import assert from "node:assert/strict";
import { renderReport } from "./report.ts";

Deno.test("renderReport escapes everything it shows and carries no script or external asset", () => {
  const html = renderReport({
    generatedAt: 0,
    capacity: [{
      proxy_iam_role_arn: "arn:aws:iam::111111111111:role/r",
      managed: true,
      subjects: 1,
      characters: 2048,
      quota: 2048,
      fits: 0,
    }],
    mappings: { all_role_mappings: {} },
    trust: [{
      proxy_iam_role_arn: "arn:aws:iam::111111111111:role/r",
      mapped: true,
      managed: true,
      provider: "p",
      audience: "a",
      characters: 2048,
      quota: 2048,
      subjects: [{
        subject: '<script>alert("x")</script>',
        statement: 0,
        operator: "StringLike",
        managed: false,
      }],
    }],
    audit: [{ time: "t", msg: "<b>m</b>", user: "u&v" }],
  });
  assert.doesNotMatch(html, /<script|<b>/);
  assert.match(html, /&lt;script&gt;alert\(&quot;x&quot;\)&lt;\/script&gt;/);
  assert.match(html, /u&amp;v/);
  assert.match(html, /class="fill full"/);
  assert.match(html, /data-fill="100">100%/);
});
