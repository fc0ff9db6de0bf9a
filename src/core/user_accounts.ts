/**
 * Whose per-user service account is whose. With per-user service accounts the platform's mutation
 * (domsed's `cloudWorkloadIdentity` with `assume_sa_mapping: true` and `default_sa: ""`) runs a
 * user's pods as `user_mappings[user]`, or else as the service account named as the user. The same
 * `user_mappings` (the chart's `userbasedserviceaccounts.user_mappings`) is the server's
 * `--user-service-accounts`, so the server can tell whether an account a pod runs as is the one the
 * platform gives its caller.
 *
 * User names are taken as they are: no lowercasing, no replacing of characters. A user whose name
 * is not a valid service-account name (`J.Doe`, `jdoe@corp`) has no account named as them, and
 * needs an entry in the mappings; two user names that a normalization would fold together can never
 * share an account by accident.
 */

import { isServiceAccountName } from "./subject.ts";

/** The platform's user mappings: user name to the service-account name their pods run as. */
export type UserServiceAccounts = ReadonlyMap<string, string>;

/**
 * What is wrong with the text of a user mappings setting (a JSON object of user name to
 * service-account name), or undefined when nothing is.
 */
export function userServiceAccountsProblem(text: string): string | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return "expected a JSON object of user name to service-account name, not valid JSON";
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return 'expected a JSON object of user name to service-account name (e.g. {"integration-test":"aws-test"})';
  }
  for (const [user, account] of Object.entries(value)) {
    if (user === "") return "expected non-empty user names";
    if (typeof account !== "string" || !isServiceAccountName(account)) {
      return `expected user ${
        JSON.stringify(user)
      } to map to a service-account name (a DNS subdomain: a-z, 0-9, "-", "."), not ${
        JSON.stringify(account)
      }`;
    }
  }
  return undefined;
}

/** Reads a user mappings setting; throws an Error naming the problem (see {@link userServiceAccountsProblem}). */
export function parseUserServiceAccounts(text: string): UserServiceAccounts {
  const problem = userServiceAccountsProblem(text);
  if (problem !== undefined) throw new Error(problem);
  // A Map, so that a user named `__proto__` or `constructor` is data, never an object's key.
  return new Map(Object.entries(JSON.parse(text) as Record<string, string>));
}

/** The service account the platform's mutation runs `user`'s pods as. */
export function accountOf(user: string, mappings: UserServiceAccounts): string {
  return mappings.get(user) ?? user;
}

/** Whether `account` is `user`'s own, and if not, why not. */
export type AccountVerdict =
  | { readonly ok: true }
  /** The platform gives the user another account (`expected`); it may be no valid name. */
  | { readonly ok: false; readonly rule: "not-the-users"; readonly expected: string }
  /** The mappings give the account to other users too: whose pods would share its subject. */
  | { readonly ok: false; readonly rule: "shared"; readonly otherUsers: number };

/**
 * Judges whether `account` belongs to `user` alone, as the platform's mutation assigns accounts:
 * it must be the account the mutation gives the user (`mappings[user]`, else the user's own name),
 * and no other user may be mapped to it. Whether another user's live pods run as it is not known
 * here; the caller checks that too.
 */
export function judgeAccount(
  user: string,
  account: string,
  mappings: UserServiceAccounts,
): AccountVerdict {
  const expected = accountOf(user, mappings);
  if (account !== expected) return { ok: false, rule: "not-the-users", expected };
  let otherUsers = 0;
  for (const [other, mapped] of mappings) {
    if (other !== user && mapped === account) otherUsers++;
  }
  return otherUsers > 0 ? { ok: false, rule: "shared", otherUsers } : { ok: true };
}
