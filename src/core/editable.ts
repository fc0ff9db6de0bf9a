/** The editable set: which proxy roles irsa may edit, and the server's own identity it is made from. */

import { AppError } from "../lib/errors.ts";
import { parseRoleArn } from "./arn.ts";

/**
 * The rule. A role is editable when it is in the account and partition of the server's own
 * credentials (the IAM adapter finds roles by name, so a role of any other account would be
 * taken for the same-named role of this one), its name matches the prefix or the list when
 * either is set, and it is not the server's own role.
 */
export interface EditableRoles {
  readonly partition: string;
  readonly account: string;
  /** When set (non-empty), a name starting with it is editable. */
  readonly prefix?: string;
  /** When non-empty, a name in it is editable. With a prefix too, either one suffices. */
  readonly names?: readonly string[];
  /** Never editable, whatever the rest says: the server's own role(s). */
  readonly serverRoles: readonly string[];
}

/** Who the server's credentials are, from STS GetCallerIdentity's ARN. */
export interface CallerIdentity {
  readonly partition: string;
  readonly account: string;
  /** The role of an assumed-role session; absent for IAM users and the root user. */
  readonly roleName?: string;
}

// arn:<partition>:sts::<account>:assumed-role/<role>/<session>, or arn:<partition>:iam::<account>:...
const CALLER_ARN = /^arn:([a-z-]+):(sts|iam)::(\d{12}):(.+)$/;

/**
 * Reads GetCallerIdentity's ARN: an assumed-role session names its role
 * (`arn:aws:sts::111111111111:assumed-role/irsa-service-role/<session>`); an IAM user or the root
 * user has none. Throws `invalid_arn` for anything else.
 */
export function callerIdentityFromArn(arn: string): CallerIdentity {
  const m = CALLER_ARN.exec(arn);
  if (!m) {
    throw new AppError(
      "invalid_arn",
      `Invalid caller identity ARN ${
        JSON.stringify(arn)
      }: expected arn:<partition>:sts::<account>:assumed-role/<role>/<session> or an IAM user`,
    );
  }
  const [, partition, service, account, resource] = m;
  const session = /^assumed-role\/([\w+=,.@-]{1,64})\/[^/]+$/.exec(resource);
  if (service === "sts" && session) return { partition, account, roleName: session[1] };
  if (service === "iam" && (resource === "root" || resource.startsWith("user/"))) {
    return { partition, account };
  }
  throw new AppError(
    "invalid_arn",
    `Invalid caller identity ARN ${
      JSON.stringify(arn)
    }: neither an assumed-role session nor an IAM user`,
  );
}

/**
 * Why irsa may not edit `roleArn`, or undefined when it may. The reason is a sentence that names
 * the role and the rule it breaks, fit for a 400 answer and the log.
 */
export function notEditableReason(roleArn: string, rules: EditableRoles): string | undefined {
  const not = `Role ${JSON.stringify(roleArn)} is not editable by irsa`;
  let role;
  try {
    role = parseRoleArn(roleArn);
  } catch (e) {
    return `${not}: ${(e as Error).message}`;
  }
  const home = `account ${JSON.stringify(rules.account)} in partition ${
    JSON.stringify(rules.partition)
  }, the server's own account`;
  if (role.partition !== rules.partition) {
    return `${not}: it is in partition ${
      JSON.stringify(role.partition)
    }; irsa edits only proxy roles of ${home}`;
  }
  if (role.account !== rules.account) {
    return `${not}: it is in account ${
      JSON.stringify(role.account)
    }; irsa edits only proxy roles of ${home}`;
  }
  // IAM role names are unique without regard to case, and GetRole finds them so.
  const own = rules.serverRoles.find((r) => r.toLowerCase() === role.name.toLowerCase());
  if (own !== undefined) {
    return `${not}: it is the server's own role ${
      JSON.stringify(own)
    }, which irsa never edits (a run granted it would hold the broker's IAM power)`;
  }
  const prefix = rules.prefix ?? "";
  const names = rules.names ?? [];
  if (prefix === "" && names.length === 0) return undefined;
  if (prefix !== "" && role.name.startsWith(prefix)) return undefined;
  if (names.includes(role.name)) return undefined;
  const wanted = [
    ...(prefix !== "" ? [`start with ${JSON.stringify(prefix)} (--proxy-role-prefix)`] : []),
    ...(names.length > 0
      ? [`be one of ${names.map((n) => JSON.stringify(n)).join(", ")} (--proxy-role-names)`]
      : []),
  ];
  return `${not}: its name ${JSON.stringify(role.name)} must ${wanted.join(" or ")}`;
}

/** The set in one line, for the start-up log and error details. */
export function describeEditable(rules: EditableRoles): Record<string, unknown> {
  return {
    partition: rules.partition,
    account: rules.account,
    prefix: rules.prefix || undefined,
    names: rules.names?.length ? rules.names : undefined,
    never: rules.serverRoles,
  };
}
