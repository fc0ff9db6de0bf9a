/** The wire contract of GET /capacity. */

import * as v from "valibot";

const ROLE = { proxy_iam_role_arn: v.string() };

/** The answer of GET /capacity: one entry per proxy role, sorted by ARN. */
export const CapacityAnswer = v.strictObject({
  roles: v.array(v.union([
    v.strictObject({
      ...ROLE,
      managed: v.literal(true),
      subjects: v.pipe(v.number(), v.integer(), v.minValue(0)),
      characters: v.pipe(v.number(), v.integer(), v.minValue(0)),
      quota: v.pipe(v.number(), v.integer(), v.minValue(0)),
      // Negative when a policy irsa did not write is already over the quota.
      free_characters: v.pipe(v.number(), v.integer()),
      fits: v.pipe(
        v.number(),
        v.integer(),
        v.minValue(0),
        v.description("How many more run subjects fit, at the length run subjects have here"),
      ),
    }),
    v.strictObject({
      ...ROLE,
      managed: v.literal(true),
      error: v.pipe(v.string(), v.description("Why the role could not be read")),
    }),
    v.strictObject({ ...ROLE, managed: v.literal(false) }),
  ])),
});

/** Registers /capacity. */

/** A row of GET /capacity as clients read it: every kind of row in one, its other fields optional. */
export interface CapacityRow {
  readonly proxy_iam_role_arn: string;
  readonly managed: boolean;
  readonly subjects?: number;
  readonly characters?: number;
  readonly quota?: number;
  readonly free_characters?: number;
  readonly fits?: number;
  readonly error?: string;
}

/** The answer of GET /capacity, as clients read it. */
export interface CapacityAnswer {
  readonly roles: readonly CapacityRow[];
}

// Every answer the schema allows reads as a CapacityAnswer: the two cannot drift apart.
export const asCapacityAnswer = (a: v.InferOutput<typeof CapacityAnswer>): CapacityAnswer => a;
