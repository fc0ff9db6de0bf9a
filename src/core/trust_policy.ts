/** Trust-policy editing: add and remove service-account subjects of one OIDC provider, within the size quota. */

import { AppError } from "../lib/errors.ts";
import { operatorFor, parseSubject, type SubjectFormat } from "./subject.ts";

/** What the editor needs to know about the cluster and the account. */
export interface TrustPolicyOptions {
  /** `arn:<partition>:iam::<account>:oidc-provider/<host>` of the cluster's OIDC provider. */
  readonly providerArn: string;
  /** The audience of projected tokens, `sts.amazonaws.com`. */
  readonly audience: string;
  readonly format: SubjectFormat;
  /** The role's trust-policy length quota in characters (2048 unless AWS raised it). */
  readonly quota: number;
}

/** Subjects to add to and remove from a trust policy, applied in one edit. */
export interface SubjectEdit {
  readonly add?: readonly string[];
  readonly remove?: readonly string[];
}

/** The outcome of an edit; `changed: false` means the document needs no write. */
export interface TrustPolicyEdit {
  readonly changed: boolean;
  /** The policy as minified JSON, ready for UpdateAssumeRolePolicy. */
  readonly document: string;
  readonly length: number;
  readonly quota: number;
  /** Managed subjects before and after the edit, in policy order. */
  readonly before: readonly string[];
  readonly subjects: readonly string[];
  /** Subjects that this edit really added or removed (not those already so). */
  readonly added: readonly string[];
  readonly removed: readonly string[];
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const WEB_IDENTITY = "sts:AssumeRoleWithWebIdentity";

/** The ARN of an account's OIDC provider for `host` (`oidc.eks.<region>.amazonaws.com/id/<ID>`). */
export function oidcProviderArn(account: string, host: string, partition = "aws"): string {
  return `arn:${partition}:iam::${account}:oidc-provider/${host}`;
}

/** The host part of an OIDC provider ARN, which prefixes its condition keys. */
export function providerHost(providerArn: string): string {
  const i = providerArn.indexOf(":oidc-provider/");
  if (i < 0) {
    throw new AppError("invalid_arn", `Invalid OIDC provider ARN ${JSON.stringify(providerArn)}`);
  }
  return providerArn.slice(i + ":oidc-provider/".length);
}

/**
 * Parses a trust policy given as JSON text or as the URL-encoded text that IAM's GetRole
 * returns, or throws `invalid_policy`.
 */
export function parseTrustPolicy(text: string): JsonObject {
  const trimmed = text.trim();
  let decoded = trimmed;
  if (!trimmed.startsWith("{")) {
    try {
      decoded = decodeURIComponent(trimmed);
    } catch {
      throw new AppError(
        "invalid_policy",
        "Invalid trust policy: neither JSON nor URL-encoded JSON",
      );
    }
  }
  let doc: Json;
  try {
    doc = JSON.parse(decoded);
  } catch (e) {
    throw new AppError("invalid_policy", `Invalid trust policy: ${(e as Error).message}`);
  }
  if (!isObject(doc)) {
    throw new AppError("invalid_policy", "Invalid trust policy: not a JSON object");
  }
  const statement = doc.Statement;
  const statements = Array.isArray(statement) ? statement : [statement];
  if (statement === undefined || !statements.every(isObject)) {
    throw new AppError(
      "invalid_policy",
      'Invalid trust policy: "Statement" must be an object or a list of objects',
    );
  }
  return doc;
}

/** The managed subjects that a trust policy admits today, in policy order. */
export function subjectsOf(text: string, options: TrustPolicyOptions): string[] {
  const doc = parseTrustPolicy(text);
  const found = findManaged(statementsOf(doc), options, "");
  return found ? readSubjects(found.statement, found.subKey, options) : [];
}

/**
 * Adds and removes subjects in the `sub` condition of the provider's web-identity statement,
 * creating that statement (with its `aud` condition) when it is missing. Statements it does not
 * manage are left as they are; the `sub` condition is never removed (an empty list becomes `""`,
 * which matches no token). Throws `invalid_subject` for a subject not of the managed form,
 * `invalid_policy` for a policy it must not edit (a statement of the provider without a `sub`
 * condition, or one that restricts `sub` with another operator, next to which it would append
 * its own), and `policy_quota_exceeded`, before any write, when the result would not fit the
 * quota.
 */
export function editTrustPolicy(
  text: string,
  edit: SubjectEdit,
  options: TrustPolicyOptions,
  role = "(unnamed)",
): TrustPolicyEdit {
  const add = checkSubjects(edit.add ?? [], options.format);
  const remove = checkSubjects(edit.remove ?? [], options.format);
  const removeSet = new Set(remove);
  const both = add.filter((s) => removeSet.has(s));
  if (both.length > 0) {
    throw new AppError(
      "bad_request",
      `Cannot both add and remove subject ${JSON.stringify(both[0])} in one edit of role ${
        JSON.stringify(role)
      }`,
    );
  }
  const doc = parseTrustPolicy(text);
  const statements = statementsOf(doc);
  const found = findManaged(statements, options, role);
  const before = found ? readSubjects(found.statement, found.subKey, options) : [];

  const held = new Set(before);
  const kept = before.filter((s) => !removeSet.has(s));
  const added = [...new Set(add)].filter((s) => !held.has(s)).sort();
  const removed = before.filter((s) => removeSet.has(s));
  const unchanged = { changed: false, before, subjects: before, added: [], removed: [] };
  if (added.length === 0 && removed.length === 0) {
    const document = JSON.stringify(doc);
    return { ...unchanged, document, length: document.length, quota: options.quota };
  }

  const render = (subjects: readonly string[]): string => {
    const copy = structuredClone(doc);
    const list = statementsOf(copy);
    if (found) {
      const statement = list[found.index];
      const condition = (statement.Condition as JsonObject)[found.operator] as JsonObject;
      condition[found.subKey] = subjects.length === 0 ? "" : [...subjects];
    } else {
      const host = providerHost(options.providerArn);
      list.push({
        Effect: "Allow",
        Principal: { Federated: options.providerArn },
        Action: WEB_IDENTITY,
        Condition: {
          [operatorFor(options.format)]: {
            [`${host}:aud`]: options.audience,
            [`${host}:sub`]: [...subjects],
          },
        },
      });
      copy.Statement = list;
    }
    return JSON.stringify(copy);
  };

  if (!found && added.length > 0) refuseNextToOtherOperator(statements, options, role);
  const subjects = [...kept, ...added];
  const document = render(subjects);
  if (document.length > options.quota && added.length > 0) {
    let fits = 0;
    while (
      fits < added.length && render([...kept, ...added.slice(0, fits + 1)]).length <= options.quota
    ) fits++;
    const what = added.length === 1
      ? `subject ${JSON.stringify(added[0])}`
      : `${added.length} subjects`;
    throw new AppError(
      "policy_quota_exceeded",
      `Cannot add ${what} to role ${
        JSON.stringify(role)
      }: the policy would be ${document.length} characters, ` +
        `over its quota of ${options.quota} (it holds ${before.length} subjects; ${fits} more would fit)`,
      { role, length: document.length, quota: options.quota, subjects: before.length, fits },
    );
  }
  return {
    changed: true,
    document,
    length: document.length,
    quota: options.quota,
    before,
    subjects,
    added,
    removed,
  };
}

function checkSubjects(subjects: readonly string[], format: SubjectFormat): string[] {
  for (const s of subjects) parseSubject(format, s);
  return [...subjects];
}

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

// Statement may be a single object; the array returned shares its objects with the document.
function statementsOf(doc: JsonObject): JsonObject[] {
  return asList(doc.Statement) as JsonObject[];
}

function asList(v: Json | undefined): Json[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

// IAM compares condition keys without regard to case.
function keyOf(obj: JsonObject, key: string): string | undefined {
  const lower = key.toLowerCase();
  return Object.keys(obj).find((k) => k.toLowerCase() === lower);
}

interface Managed {
  index: number;
  statement: JsonObject;
  operator: string;
  subKey: string;
}

function findManaged(
  statements: JsonObject[],
  options: TrustPolicyOptions,
  role: string,
): Managed | undefined {
  const host = providerHost(options.providerArn);
  const operator = operatorFor(options.format);
  let managed: Managed | undefined;
  statements.forEach((statement, index) => {
    const principal = statement.Principal;
    const federated = isObject(principal) ? asList(principal.Federated) : [];
    const isOurs = statement.Effect === "Allow" && federated.includes(options.providerArn) &&
      asList(statement.Action).includes(WEB_IDENTITY);
    if (!isOurs) return;
    const condition = isObject(statement.Condition) ? statement.Condition : {};
    const restricted = Object.values(condition).some((op) =>
      isObject(op) && keyOf(op, `${host}:sub`) !== undefined
    );
    if (!restricted) {
      // Editing next to a statement that already admits every service account would be meaningless.
      throw new AppError(
        "invalid_policy",
        `Refusing to edit role ${
          JSON.stringify(role)
        }: its statement ${index} lets every service account ` +
          `of the cluster assume it (no "${host}:sub" condition); fix the trust policy by hand`,
      );
    }
    const block = condition[operator];
    const subKey = isObject(block) ? keyOf(block, `${host}:sub`) : undefined;
    if (!managed && subKey !== undefined) managed = { index, statement, operator, subKey };
  });
  return managed;
}

/**
 * Throws `invalid_policy` when a statement of the provider restricts `sub` with an operator
 * other than the format's: appending a statement of our operator next to it would widen a role
 * that someone else keeps narrow (a regression: a `StringLike` run subject next to the broker's own
 * `StringEquals` one). A statement whose `sub` values are all `""` admits no token, so a
 * statement appended next to it changes nobody else's access: that is the fresh proxy role of
 * `deploy/aws/proxy-role-trust.json` (`StringLike`), used with `--subject-format exact`.
 */
function refuseNextToOtherOperator(
  statements: JsonObject[],
  options: TrustPolicyOptions,
  role: string,
): void {
  const host = providerHost(options.providerArn);
  const ours = operatorFor(options.format);
  statements.forEach((statement, index) => {
    const principal = statement.Principal;
    const federated = isObject(principal) ? asList(principal.Federated) : [];
    if (!federated.includes(options.providerArn)) return;
    if (!asList(statement.Action).includes(WEB_IDENTITY)) return;
    const condition = isObject(statement.Condition) ? statement.Condition : {};
    for (const [operator, block] of Object.entries(condition)) {
      if (operator === ours || !isObject(block)) continue;
      const subKey = keyOf(block, `${host}:sub`);
      if (subKey === undefined) continue;
      if (asList(block[subKey]).every((value) => value === "")) continue;
      throw new AppError(
        "invalid_policy",
        `Refusing to edit role ${
          JSON.stringify(role)
        }: its statement ${index} restricts "${subKey}" ` +
          `with ${operator}, and irsa would add a ${ours} statement next to it, widening who may ` +
          `assume the role; a proxy role irsa manages holds its subjects under ${ours} only`,
        { role, statement: index, operator },
      );
    }
  });
}

function readSubjects(
  statement: JsonObject,
  subKey: string,
  options: TrustPolicyOptions,
): string[] {
  const block = (statement.Condition as JsonObject)[operatorFor(options.format)] as JsonObject;
  return asList(block[subKey]).filter((s): s is string => typeof s === "string" && s !== "");
}
