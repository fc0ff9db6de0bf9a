import assert from "node:assert/strict";
import fc from "fast-check";
import { isRoleArn, ROLE_ARN_MAX_LENGTH, ROLE_ARN_PATTERN } from "./arn.ts";

const pattern = new RegExp(ROLE_ARN_PATTERN, "u");

// ARN-shaped strings, near misses included: unknown partitions, short accounts, odd characters.
const arnLike = fc.tuple(
  fc.constantFrom("aws", "aws-cn", "aws-us-gov", "aws-iso-b", "aws-iso-f", "aws-xx", "AWS", ""),
  fc.stringMatching(/^\d{11,13}$/),
  fc.array(fc.stringMatching(/^[\w+=,.@# -]{0,6}$/), { maxLength: 3 }),
  fc.stringMatching(/^[\w+=,.@ :-]{0,66}$/),
).map(([partition, account, path, name]) =>
  `arn:${partition}:iam::${account}:role/${path.map((p) => `${p}/`).join("")}${name}`
);

Deno.test("the published ARN pattern accepts what isRoleArn accepts and nothing else", () => {
  fc.assert(
    fc.property(fc.oneof(arnLike, fc.string()), (s) => {
      // Paths stay far under 512 characters here, the one limit the pattern leaves to maxLength.
      assert.equal(pattern.test(s), isRoleArn(s), s);
    }),
    { numRuns: 2000 },
  );
});

Deno.test("the ARN's maxLength bounds every ARN isRoleArn accepts", () => {
  const longest = `arn:aws-us-gov:iam::123456789012:role/${"p".repeat(510)}/${"n".repeat(64)}`;
  assert.ok(isRoleArn(longest));
  assert.equal(longest.length, ROLE_ARN_MAX_LENGTH);
  assert.ok(!isRoleArn(`arn:aws:iam::123456789012:role/${"p".repeat(520)}/n`));
});
