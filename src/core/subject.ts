/** Service-account subjects as trust policies name them, and the run ids they are made from. */

import { AppError } from "../lib/errors.ts";

/**
 * How a trust policy names a service account:
 * - `wildcard`: `*:<namespace>:<name>` under `StringLike`, the platform's current format;
 * - `exact`: `system:serviceaccount:<namespace>:<name>` under `StringEquals`.
 */
export type SubjectFormat = "wildcard" | "exact";

/** The condition operator that holds subjects of a format. */
export function operatorFor(format: SubjectFormat): "StringLike" | "StringEquals" {
  return format === "wildcard" ? "StringLike" : "StringEquals";
}

/** A Kubernetes service account. */
export interface ServiceAccount {
  readonly namespace: string;
  readonly name: string;
}

// Kubernetes: a namespace is a DNS label, a service account name a DNS subdomain. Neither allows
// `*`, `?` or `$`, the characters that IAM's StringLike and policy variables would interpret.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN =
  /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Whether `name` is a valid service-account name (a DNS subdomain). */
export function isServiceAccountName(name: string): boolean {
  return DNS_SUBDOMAIN.test(name);
}

/** Checks a service account's namespace and name, or throws `invalid_subject`. */
export function validateServiceAccount(sa: ServiceAccount): ServiceAccount {
  if (!DNS_LABEL.test(sa.namespace)) {
    throw new AppError(
      "invalid_subject",
      `Invalid namespace ${JSON.stringify(sa.namespace)}: expected a DNS label (a-z, 0-9, "-")`,
    );
  }
  if (!DNS_SUBDOMAIN.test(sa.name)) {
    throw new AppError(
      "invalid_subject",
      `Invalid service account name ${
        JSON.stringify(sa.name)
      }: expected a DNS subdomain (a-z, 0-9, "-", ".")`,
    );
  }
  return sa;
}

/** The subject that admits exactly this service account, in the given format. */
export function subjectFor(format: SubjectFormat, sa: ServiceAccount): string {
  validateServiceAccount(sa);
  const prefix = format === "wildcard" ? "*" : "system:serviceaccount";
  return `${prefix}:${sa.namespace}:${sa.name}`;
}

/**
 * Parses a subject of the given format back into its service account, or throws
 * `invalid_subject`: anything but the exact managed form is refused, so a stray `*` or `?` can
 * never widen a policy.
 */
export function parseSubject(format: SubjectFormat, subject: string): ServiceAccount {
  const prefix = format === "wildcard" ? "*:" : "system:serviceaccount:";
  const rest = subject.startsWith(prefix) ? subject.slice(prefix.length).split(":") : [];
  if (rest.length !== 2) {
    throw new AppError(
      "invalid_subject",
      `Invalid subject ${
        JSON.stringify(subject)
      }: expected "${prefix}<namespace>:<service account>"`,
    );
  }
  return validateServiceAccount({ namespace: rest[0], name: rest[1] });
}

/** True when `subject` is of the managed form of `format`. */
export function isManagedSubject(format: SubjectFormat, subject: string): boolean {
  try {
    parseSubject(format, subject);
    return true;
  } catch {
    return false;
  }
}

/** The service account named by a projected token's `sub` (`system:serviceaccount:<ns>:<name>`). */
export function serviceAccountFromTokenSubject(sub: string): ServiceAccount {
  return parseSubject("exact", sub);
}

/** The default pattern of a run id: 24 lowercase hex characters. */
export const RUN_ID_PATTERN = /^[0-9a-f]{24}$/;

/** The service account of a run: `run-<run id>`. */
export function runServiceAccountName(runId: string, pattern: RegExp = RUN_ID_PATTERN): string {
  if (!pattern.test(runId)) {
    throw new AppError(
      "invalid_subject",
      `Invalid run id ${JSON.stringify(runId)}: expected it to match ${pattern.source}`,
    );
  }
  return `run-${runId}`;
}
