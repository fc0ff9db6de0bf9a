/**
 * A small, independent evaluator of IAM trust policies for web-identity tokens, used by tests to
 * judge what a policy admits without trusting the module that wrote it. It knows just enough of
 * IAM: Allow and Deny, Federated principals, actions with `*`, and the StringEquals/StringLike
 * (and their Not/IfExists-free) operators with IAM's case-insensitive keys and `*`/`?` globs.
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
    if (!list(s.Action).some((a: string) => glob(a, "sts:AssumeRoleWithWebIdentity"))) continue;
    if (!conditionHolds(s.Condition, req)) continue;
    if (s.Effect === "Deny") return false;
    if (s.Effect === "Allow") allowed = true;
  }
  return allowed;
}
