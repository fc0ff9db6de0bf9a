/** Parsing and validation of IAM role ARNs. */

import { AppError } from "../lib/errors.ts";

/** An IAM role ARN, taken apart. */
export interface RoleArn {
  readonly arn: string;
  readonly partition: string;
  readonly account: string;
  /** The role's path, `/` when it has none; always starts and ends with `/`. */
  readonly path: string;
  readonly name: string;
}

/** The AWS partitions a role ARN may name. */
export const PARTITIONS: readonly string[] = [
  "aws",
  "aws-cn",
  "aws-us-gov",
  "aws-iso",
  "aws-iso-b",
  "aws-iso-e",
  "aws-iso-f",
];

// IAM allows any printable ASCII in a path; we accept the characters of role names and `/`, so
// that an ARN can never carry `#`, `;`, `[` or spaces into an AWS config file.
const ROLE_ARN = /^arn:([a-z-]+):iam::(\d{12}):role(\/(?:[\w+=,.@-]+\/)*)([\w+=,.@-]{1,64})$/;

/**
 * What {@link isRoleArn} accepts, as a JSON-schema pattern (no flags): the partition named, the
 * path's limit of 512 characters aside, which {@link ROLE_ARN_MAX_LENGTH} bounds.
 */
export const ROLE_ARN_PATTERN = `^arn:(?:${
  PARTITIONS.join("|")
}):iam::\\d{12}:role/(?:[\\w+=,.@-]+/)*[\\w+=,.@-]{1,64}$`;

/** The longest role ARN: the longest partition, a 512-character path and a 64-character name. */
export const ROLE_ARN_MAX_LENGTH = "arn:aws-us-gov:iam::123456789012:role".length + 512 + 64;

/** Parses a role ARN, or throws `invalid_arn` naming what is wrong. */
export function parseRoleArn(arn: string): RoleArn {
  const m = ROLE_ARN.exec(arn);
  if (!m) {
    throw new AppError(
      "invalid_arn",
      `Invalid role ARN ${
        JSON.stringify(arn)
      }: expected arn:<partition>:iam::<12-digit account>:role/[<path>/]<name>`,
    );
  }
  const [, partition, account, path, name] = m;
  if (!PARTITIONS.includes(partition)) {
    throw new AppError(
      "invalid_arn",
      `Invalid role ARN ${JSON.stringify(arn)}: unknown partition ${JSON.stringify(partition)}`,
    );
  }
  if (path.length > 512) {
    throw new AppError(
      "invalid_arn",
      `Invalid role ARN ${JSON.stringify(arn)}: path over 512 characters`,
    );
  }
  return { arn, partition, account, path, name };
}

/** True when `arn` is a valid role ARN. */
export function isRoleArn(arn: string): boolean {
  try {
    parseRoleArn(arn);
    return true;
  } catch {
    return false;
  }
}
