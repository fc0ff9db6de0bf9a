/**
 * A small, independent evaluator of IAM policies, used by tests (and the strict STS fixture) to
 * judge what a policy admits without trusting the module that wrote it. It knows just enough of
 * IAM: Allow and Deny (Deny wins), Federated and AWS principals, actions and resources with `*`,
 * and the StringEquals/StringLike (and their Not/IfExists-free) operators with IAM's
 * case-insensitive keys, `*`/`?` globs, and a list of values matching when any value does.
 */

/** The request a projected token makes: AssumeRoleWithWebIdentity with its claims. */
export interface WebIdentityRequest {
  providerArn: string;
  /** The provider's host, which prefixes its condition keys. */
  host: string;
  sub: string;
  aud: string;
}

// deno-lint-ignore no-explicit-any
type Any = any;

const list = (v: Any): Any[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

function glob(pattern: string, value: string): boolean {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${re}$`, "s").test(value);
}

function conditionHolds(condition: Any, req: WebIdentityRequest): boolean {
  const context: Record<string, string> = {
    [`${req.host}:sub`.toLowerCase()]: req.sub,
    [`${req.host}:aud`.toLowerCase()]: req.aud,
  };
  for (const [operator, block] of Object.entries(condition ?? {})) {
    for (const [key, values] of Object.entries(block as Record<string, Any>)) {
      const actual = context[key.toLowerCase()];
      if (actual === undefined) return false;
      const wanted = list(values).map(String);
      const match = operator === "StringLike"
        ? wanted.some((w) => glob(w, actual))
        : operator === "StringEquals"
        ? wanted.includes(actual)
        : (() => {
          throw new Error(`evaluator: unsupported operator ${operator}`);
        })();
      if (!match) return false;
    }
  }
  return true;
}

/** True when the policy lets the request assume the role. */
export function admits(policy: Any, req: WebIdentityRequest): boolean {
  let allowed = false;
  for (const s of list(policy.Statement)) {
    const principals = list(s.Principal?.Federated);
    if (!principals.includes(req.providerArn)) continue;
    if (!actionMatches(s, "sts:AssumeRoleWithWebIdentity")) continue;
    if (!conditionHolds(s.Condition, req)) continue;
    if (s.Effect === "Deny") return false;
    if (s.Effect === "Allow") allowed = true;
  }
  return allowed;
}

/** Who calls AssumeRole: the session's role (or a user) and its account. */
export interface AwsCaller {
  account: string;
  /** `arn:aws:iam::<account>:role/<name>` or `arn:aws:iam::<account>:user/<name>`. */
  principalArn: string;
  /** `arn:aws:sts::<account>:assumed-role/<role>/<session>` for a role session. */
  sessionArn?: string;
}

/**
 * What a trust policy says to an AssumeRole call from `caller`: `"denied"` (an explicit Deny),
 * `"named"` (an Allow naming the caller itself), `"account"` (an Allow naming only its account,
 * which IAM then leaves to the caller's own permissions) or `"none"`. Statements with conditions
 * never match: the tests' AWS principals carry no context keys.
 */
export function trustFor(
  policy: Any,
  caller: AwsCaller,
): "denied" | "named" | "account" | "none" {
  let answer: "named" | "account" | "none" = "none";
  for (const s of list(policy.Statement)) {
    if (!actionMatches(s, "sts:AssumeRole") || s.Condition !== undefined) continue;
    const named = list(s.Principal === "*" ? "*" : s.Principal?.AWS).map(String);
    const match = named.includes("*") || named.includes(caller.principalArn) ||
        (caller.sessionArn !== undefined && named.includes(caller.sessionArn))
      ? "named"
      : named.includes(caller.account) || named.includes(`arn:aws:iam::${caller.account}:root`)
      ? "account"
      : undefined;
    if (match === undefined) continue;
    if (s.Effect === "Deny") return "denied";
    if (s.Effect === "Allow" && answer !== "named") answer = match;
  }
  return answer;
}

/**
 * True when identity policies (inline and managed, any number) allow `action` on `resource`:
 * some Allow matches and no Deny does. Actions match case-insensitively, resources as globs.
 */
export function identityAllows(policies: Any[], action: string, resource: string): boolean {
  let allowed = false;
  for (const policy of policies) {
    for (const s of list(policy.Statement)) {
      if (!actionMatches(s, action) || s.Condition !== undefined) continue;
      const resources = s.NotResource !== undefined
        ? !list(s.NotResource).some((r: string) => glob(r, resource))
        : list(s.Resource).some((r: string) => glob(r, resource));
      if (!resources) continue;
      if (s.Effect === "Deny") return false;
      if (s.Effect === "Allow") allowed = true;
    }
  }
  return allowed;
}

function actionMatches(statement: Any, action: string): boolean {
  const hit = (a: string) => glob(a.toLowerCase(), action.toLowerCase());
  return statement.NotAction !== undefined
    ? !list(statement.NotAction).some(hit)
    : list(statement.Action).some(hit);
}
