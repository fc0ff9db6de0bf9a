/**
 * Why a user's pod can or cannot assume a profile, step by step: organizations, mappings, the
 * proxy role, the trust-policy flag, the subject, the provider and audience, propagation. Pure:
 * the shell reads the mappings, the grant record and the trust policies and passes them in.
 */

import { type Grant, grantOf } from "./grants.ts";
import { type Mappings, pairsFor } from "./mapping.ts";
import { poolOf, profilesFor, type RolePair } from "./role_chain.ts";
import { editTrustPolicy, providerHost } from "./trust_policy.ts";
import {
  statementFor,
  stringLike,
  type WebIdentityStatement,
  webIdentityStatements,
} from "./trust_statements.ts";

export { statementFor, stringLike, webIdentityStatements };
export type { WebIdentityStatement };
import type { SubjectFormat } from "./subject.ts";

/** The steps, in the order they are checked. */
export type StepId =
  | "organizations"
  | "mappings"
  | "proxy_role"
  | "update_trust_policy"
  | "subject_in_policy"
  | "provider_audience"
  | "propagation";

/** One checked step; `advice` says what an admin would do when it failed. */
export interface ExplainStep {
  readonly id: StepId;
  readonly status: "passed" | "failed" | "skipped";
  /** The profile the step is about, for the steps checked per pair. */
  readonly profile?: string;
  readonly detail: string;
  readonly advice?: string;
}

/** The answer: every step, and the first that failed. */
export interface Explanation {
  readonly user: string;
  readonly run?: string;
  readonly subject?: string;
  readonly profile?: string;
  readonly organizations?: string[];
  /** Where the organizations came from. */
  readonly organizations_source: string;
  readonly steps: ExplainStep[];
  readonly ok: boolean;
  readonly failed_step?: StepId;
  readonly advice?: string;
}

/** A trust policy as read, or why it could not be. */
export type PolicyRead = { readonly document: string } | { readonly error: string };

/** What explaining needs, all of it read beforehand by the shell. */
export interface ExplainInput {
  readonly user: string;
  readonly run?: string;
  /** The run's subject, as the server would write it. */
  readonly subject?: string;
  readonly profile?: string;
  /** Every recorded grant: the user's organizations are those of their latest sync. */
  readonly grants: Readonly<Record<string, Grant>>;
  readonly mappings: Mappings;
  /** The trust policy of every proxy role of the user's pairs. */
  readonly policies: ReadonlyMap<string, PolicyRead>;
  /** The provider ARN irsa writes for a role (its account's provider). */
  readonly providerArnFor: (roleArn: string) => string;
  readonly audience: string;
  readonly format: SubjectFormat;
  readonly quota: number;
  /** A subject of the length runs have, to test whether one more fits. */
  readonly sampleSubject: string;
  /** Why irsa may not edit a proxy role, or undefined. */
  readonly editable?: (roleArn: string) => string | undefined;
}

const q = JSON.stringify;

/** Explains one user's profile (or every profile of theirs), stopping at nothing: every step is shown. */
export function explain(input: ExplainInput): Explanation {
  const steps: ExplainStep[] = [];
  const base = {
    user: input.user,
    ...(input.run ? { run: input.run } : {}),
    ...(input.subject ? { subject: input.subject } : {}),
    ...(input.profile ? { profile: input.profile } : {}),
  };
  const source = "the grant record (the organizations at the user's last sync)";
  const finish = (organizations?: readonly string[]): Explanation => {
    const failed = steps.find((s) => s.status === "failed");
    return {
      ...base,
      ...(organizations ? { organizations: [...organizations] } : {}),
      organizations_source: source,
      steps,
      ok: failed === undefined,
      ...(failed ? { failed_step: failed.id, advice: failed.advice } : {}),
    };
  };

  // 1. Organizations: the server learns them only from the user's own token, at a sync.
  const found = grantOf(input.grants, input.user, input.subject);
  if (!found) {
    steps.push({
      id: "organizations",
      status: "failed",
      detail: `irsa has no record of user ${
        q(input.user)
      } syncing, so it does not know their organizations (it learns them only from the user's own token)`,
      advice: `Start a workspace as ${
        q(input.user)
      } (or run "curl $DOMINO_IRSA_PROXY/refresh" in one), then explain again`,
    });
    return finish();
  }
  const organizations = found.grant.organizations;
  steps.push({
    id: "organizations",
    status: "passed",
    detail: `${organizations.length ? organizations.map((o) => q(o)).join(", ") : "none"}, from ${
      q(found.subject)
    }'s sync at ${new Date(found.grant.syncedAt).toISOString()} (grant record)`,
  });

  // 2. Mappings: the pairs the organizations select, narrowed to the profile asked about.
  const pairs = pairsFor(input.mappings, organizations);
  const profiles = profilesFor(pairs, { webIdentityTokenFile: "/token" });
  const chosen = input.profile === undefined
    ? profiles
    : profiles.filter((p) => p.name === input.profile);
  if (pairs.length === 0) {
    steps.push({
      id: "mappings",
      status: "failed",
      detail: organizations.length
        ? `None of ${q(input.user)}'s organizations (${
          organizations.map((o) => q(o)).join(", ")
        }) is mapped to a role pair`
        : `${q(input.user)} is in no organization, so no mapping selects a pair`,
      advice: `Add ${
        q(input.user)
      } to a mapped organization, or map one of theirs (irsa admin mappings apply)`,
    });
    return finish(organizations);
  }
  if (chosen.length === 0) {
    steps.push({
      id: "mappings",
      status: "failed",
      detail: `No pair of ${q(input.user)}'s organizations gives profile ${
        q(input.profile)
      }; they get ${profiles.map((p) => q(p.name)).join(", ")}`,
      advice: `Map the asset role of ${q(input.profile)} to one of ${
        organizations.map((o) => q(o)).join(", ")
      }`,
    });
    return finish(organizations);
  }
  steps.push({
    id: "mappings",
    status: "passed",
    detail: chosen.map((p) =>
      `profile ${q(p.name)}: asset ${p.pair.assetRoleArn} through ${poolOf(p.pair).join(", ")}${
        p.pair.updateTrustPolicy === false ? " (update_iam_role_trust_policy: false)" : ""
      }`
    ).join("; "),
  });

  for (const { name, pair } of chosen) {
    explainPair(input, name, pair, steps);
  }
  return finish(organizations);
}

/** What every step of one pair reads: the pair, its pool, the policies, the member holding the subject. */
interface PairView {
  readonly input: ExplainInput;
  readonly pair: RolePair;
  readonly managed: boolean;
  readonly pool: readonly string[];
  readonly statementsOf: (role: string) => WebIdentityStatement[] | undefined;
  /** The pool member whose policy admits the run's subject. */
  readonly holder?: string;
}

/** A step as its check returns it; the profile is added where the steps are gathered. */
type Step = Omit<ExplainStep, "profile">;

function explainPair(input: ExplainInput, profile: string, pair: RolePair, steps: ExplainStep[]) {
  const pool = poolOf(pair);
  const statementsOf = (role: string) => {
    const read = input.policies.get(role);
    if (read === undefined || "error" in read) return undefined;
    try {
      return webIdentityStatements(read.document);
    } catch {
      return undefined;
    }
  };
  const holder = input.subject === undefined
    ? undefined
    : pool.find((r) => statementFor(statementsOf(r) ?? [], input.subject!) !== undefined);
  const view: PairView = {
    input,
    pair,
    managed: pair.updateTrustPolicy !== false,
    pool,
    statementsOf,
    holder,
  };
  const { step, role } = proxyRoleStep(view);
  const present = role !== undefined && holder === role;
  for (
    const s of [
      step,
      editorStep(view, role, present),
      subjectStep(view, role, present),
      providerStep(view, role, present),
      PROPAGATION_STEP,
    ]
  ) {
    steps.push({ ...s, profile });
  }
}

/** The proxy role: the pool member that holds the subject, else the first with room. */
function proxyRoleStep(view: PairView): { step: Step; role?: string } {
  const { input, pool, managed, holder, statementsOf } = view;
  let role: string | undefined = holder;
  let step: Step;
  const unreadable = pool.filter((r) => statementsOf(r) === undefined);
  if (role !== undefined) {
    step = {
      id: "proxy_role",
      status: "passed",
      detail: `${role} holds ${q(input.subject)}${
        pool.length > 1 ? ` (pool of ${pool.length})` : ""
      }`,
    };
  } else if (!managed) {
    role = pool[0];
    step = {
      id: "proxy_role",
      status: "passed",
      detail: `${role}: the admin manages its trust policy, so irsa picks no pool member`,
    };
  } else {
    const refused = pool.map((r) => [r, input.editable?.(r)] as const).filter(([, why]) => why);
    const sizes: string[] = [];
    for (const r of pool) {
      if (refused.some(([x]) => x === r)) continue;
      const read = input.policies.get(r);
      if (read === undefined || "error" in read) continue;
      try {
        const e = editTrustPolicy(read.document, { add: [input.subject ?? input.sampleSubject] }, {
          providerArn: input.providerArnFor(r),
          audience: input.audience,
          format: input.format,
          quota: input.quota,
        }, r);
        role = r;
        sizes.push(
          `${r}: ${e.before.length} subjects, ${read.document.length} of ${input.quota} characters`,
        );
        break;
      } catch (e) {
        sizes.push(`${r}: ${(e as Error).message}`);
      }
    }
    if (role !== undefined) {
      step = {
        id: "proxy_role",
        status: "passed",
        detail: `${sizes.at(-1)}; room for the run's subject`,
      };
    } else if (refused.length === pool.length) {
      step = {
        id: "proxy_role",
        status: "failed",
        detail: refused.map(([r, why]) => `${r} is outside the roles irsa may edit: ${why}`).join(
          "; ",
        ),
        advice: "Map a proxy role irsa may edit, or widen the editable set (--proxy-role-prefix)",
      };
    } else if (unreadable.length > 0 && sizes.length === 0) {
      const why = unreadable.map((r) => {
        const read = input.policies.get(r);
        return `${r}: ${read && "error" in read ? read.error : "not read"}`;
      }).join("; ");
      step = {
        id: "proxy_role",
        status: "failed",
        detail: `Cannot read the trust policy of ${why}`,
        advice: "Check that the role exists and that the server's role may call iam:GetRole on it",
      };
    } else {
      step = {
        id: "proxy_role",
        status: "failed",
        detail: `The pool is full: ${sizes.join("; ")}`,
        advice:
          `Add a proxy role to the pair's proxy_iam_role_arns, or raise the trust-policy quota (L-C07B4B0D) and --trust-policy-quota`,
      };
    }
  }

  return { step: step!, role };
}

/** Who edits the trust policy: irsa, or the admin by hand. */
function editorStep(view: PairView, role: string | undefined, present: boolean): Step {
  const { input, managed } = view;
  if (managed) {
    return {
      id: "update_trust_policy",
      status: "passed",
      detail: "update_iam_role_trust_policy is true: irsa adds the run's subject at each sync",
    };
  } else if (input.subject === undefined || present) {
    return {
      id: "update_trust_policy",
      status: "passed",
      detail: `update_iam_role_trust_policy is false: the admin manages ${role}'s trust policy${
        present ? " and it holds the subject" : "; give --run to check the subject"
      }`,
    };
  } else {
    return {
      id: "update_trust_policy",
      status: "failed",
      detail:
        `update_iam_role_trust_policy is false: irsa never adds subjects to ${role}, and its trust policy lacks ${
          q(input.subject)
        }`,
      advice: `Add ${
        q(input.subject)
      } to ${role}'s trust policy by hand, or set update_iam_role_trust_policy to true`,
    };
  }
}

/** The run's subject in the policy now. */
function subjectStep(view: PairView, role: string | undefined, present: boolean): Step {
  const { input, managed, pool, statementsOf } = view;
  if (input.subject === undefined) {
    return {
      id: "subject_in_policy",
      status: "skipped",
      detail: "No run given (--run): no subject to look for",
    };
  } else if (present) {
    return {
      id: "subject_in_policy",
      status: "passed",
      detail: `${role} admits ${q(input.subject)} (statement ${
        statementFor(statementsOf(role!)!, input.subject)!.index
      })`,
    };
  } else {
    return {
      id: "subject_in_policy",
      status: "failed",
      detail: `${role ?? pool.join(", ")} does not admit ${q(input.subject)} now`,
      advice: managed
        ? `The run has not synced to this role: check its sidecar ("curl $DOMINO_IRSA_PROXY/healthz") or run "curl $DOMINO_IRSA_PROXY/refresh" in the workspace`
        : `Add ${q(input.subject)} to ${role}'s trust policy`,
    };
  }
}

/** The provider and audience the statement requires. */
function providerStep(view: PairView, role: string | undefined, present: boolean): Step {
  const { input, pool, statementsOf } = view;
  // A full pool still has a statement to check: its first member's.
  const checked = role ?? pool[0];
  const statements = statementsOf(checked);
  const statement = statements === undefined
    ? undefined
    : input.subject !== undefined && present
    ? statementFor(statements, input.subject)
    : statements.find((s) => s.federated.includes(input.providerArnFor(checked))) ??
      statements[0];
  if (statement === undefined) {
    return {
      id: "provider_audience",
      status: "skipped",
      detail: "No web-identity statement to check",
    };
  } else {
    const expected = input.providerArnFor(checked);
    const host = providerHost(expected);
    if (!statement.federated.includes(expected)) {
      return {
        id: "provider_audience",
        status: "failed",
        detail: `Statement ${statement.index} of ${checked} trusts ${
          statement.federated.join(", ") || "no federated provider"
        }, not the cluster's provider ${expected}`,
        advice: `Make the statement's Principal.Federated ${expected}`,
      };
    } else if (
      statement.audiences !== undefined &&
      !statement.audiences.some((a) => stringLike(a, input.audience))
    ) {
      return {
        id: "provider_audience",
        status: "failed",
        detail: `Statement ${statement.index} of ${checked} requires audience ${
          statement.audiences.map((a) => q(a)).join(" or ")
        } (${host}:aud), but pod tokens carry ${q(input.audience)}`,
        advice: `Set the statement's ${host}:aud condition to ${q(input.audience)}`,
      };
    } else {
      return {
        id: "provider_audience",
        status: "passed",
        detail: `Statement ${statement.index} trusts ${expected} with audience ${
          q(input.audience)
        }${statement.audiences === undefined ? " (no aud condition)" : ""}`,
      };
    }
  }
}

/** Propagation: the sidecar checks it, but does not report it to the server. */
const PROPAGATION_STEP: Step = {
  id: "propagation",
  status: "skipped",
  detail:
    'The sidecar does not report its propagation check to the server; see "curl $DOMINO_IRSA_PROXY/healthz" in the workspace',
};
