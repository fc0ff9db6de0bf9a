/** IAM adapter for proxy roles' trust policies; the only place that translates IAM SDK errors. */

import {
  GetRoleCommand,
  IAMClient,
  type IAMClientConfig,
  UpdateAssumeRolePolicyCommand,
} from "@aws-sdk/client-iam";
import { StandardRetryStrategy, type StandardRetryStrategyOptions } from "@smithy/util-retry";
import { AppError, type ErrorCode } from "../lib/errors.ts";

/** Reads and writes the trust policy of a role by name; what the server uses, and what tests fake. */
export interface RolePolicyStore {
  /** The trust policy document as JSON text, already URL-decoded. */
  getTrustPolicy(roleName: string): Promise<string>;
  /** Replaces the trust policy of a role with `document` (JSON text), as given. */
  putTrustPolicy(roleName: string, document: string): Promise<void>;
}

/** The IAM operations the adapter performs, as named in metrics and error details. */
export type IamOperation = "GetRole" | "UpdateAssumeRolePolicy";

/** How one IAM call ended: "ok", or the code of the AppError it raised. */
export type IamOutcome = "ok" | ErrorCode;

/** Options of {@link createIamClient}. */
export interface IamClientOptions {
  region: string;
  /** Overrides the IAM endpoint, e.g. a local moto server in tests. */
  endpoint?: string;
  /** Deadline of one HTTP attempt, from connecting to the end of the response; default 5000 ms. */
  timeoutMs?: number;
  /** Attempts per call, the first included; default 3. */
  maxAttempts?: number;
  /** Defaults to the SDK's provider chain (on EKS, the pod's web identity). */
  credentials?: IAMClientConfig["credentials"];
  /** Replaces the exponential backoff between attempts; tests pass one that does not wait. */
  backoff?: StandardRetryStrategyOptions["backoff"];
}

const DEFAULT_TIMEOUT_MS = 5_000;
const DEFAULT_MAX_ATTEMPTS = 3;

/**
 * The SDK's standard retry strategy, except that IAM's `LimitExceeded` fails at once.
 *
 * The SDK counts `LimitExceededException` among its throttling errors, so by default a trust
 * policy over its size quota is sent again and again with throttling backoff (a base of one
 * second) although it can never succeed. `Throttling`, 5xx answers, timeouts and connection
 * errors are still retried with backoff.
 */
export class IamRetryStrategy extends StandardRetryStrategy {
  constructor(options: StandardRetryStrategyOptions) {
    super(options);
  }

  override refreshRetryTokenForRetry(
    ...[token, errorInfo]: Parameters<StandardRetryStrategy["refreshRetryTokenForRetry"]>
  ): ReturnType<StandardRetryStrategy["refreshRetryTokenForRetry"]> {
    // The retry middleware rethrows the original error when this rejects.
    if (awsCode(errorInfo.error) === "LimitExceeded") {
      return Promise.reject(new Error("IAM quota errors are not retried"));
    }
    return super.refreshRetryTokenForRetry(token, errorInfo);
  }
}

/** Builds an IAM client with short, enforced timeouts and {@link IamRetryStrategy}. */
export function createIamClient(options: IamClientOptions): IAMClient {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  return new IAMClient({
    region: options.region,
    endpoint: options.endpoint,
    credentials: options.credentials,
    maxAttempts,
    retryStrategy: new IamRetryStrategy({ maxAttempts, backoff: options.backoff }),
    // Options for the SDK's NodeHttpHandler. Without throwOnRequestTimeout, a request that outlives
    // requestTimeout only logs a warning and goes on waiting.
    requestHandler: {
      connectionTimeout: timeoutMs,
      requestTimeout: timeoutMs,
      throwOnRequestTimeout: true,
    },
  });
}

/** Options of {@link createIamTrustPolicyStore}. */
export interface IamTrustPolicyStoreOptions {
  /** Called once per IAM call (after its retries), e.g. to count calls in metrics. */
  onCall?: (operation: IamOperation, outcome: IamOutcome) => void;
}

/** A {@link RolePolicyStore} backed by IAM's GetRole and UpdateAssumeRolePolicy. */
export function createIamTrustPolicyStore(
  client: IAMClient,
  options: IamTrustPolicyStoreOptions = {},
): RolePolicyStore {
  const call = async <T>(
    operation: IamOperation,
    roleName: string,
    send: () => Promise<T>,
  ): Promise<T> => {
    try {
      const result = await send();
      options.onCall?.(operation, "ok");
      return result;
    } catch (error) {
      const appError = error instanceof AppError ? error : toAppError(error, operation, roleName);
      options.onCall?.(operation, appError.code);
      throw appError;
    }
  };

  return {
    getTrustPolicy: (roleName) =>
      call("GetRole", roleName, async () => {
        const { Role } = await client.send(new GetRoleCommand({ RoleName: roleName }));
        const encoded = Role?.AssumeRolePolicyDocument;
        if (encoded === undefined) {
          throw new AppError(
            "upstream_error",
            `Cannot read the trust policy of role "${roleName}": IAM returned no document`,
            { operation: "GetRole", roleName },
          );
        }
        return decodePolicyDocument(encoded, roleName);
      }),
    putTrustPolicy: (roleName, document) =>
      call("UpdateAssumeRolePolicy", roleName, async () => {
        await client.send(
          new UpdateAssumeRolePolicyCommand({ RoleName: roleName, PolicyDocument: document }),
        );
      }),
  };
}

// GetRole returns AssumeRolePolicyDocument URL-encoded (RFC 3986), unlike the plain JSON that
// UpdateAssumeRolePolicy takes; the SDK passes the string through untouched.
function decodePolicyDocument(encoded: string, roleName: string): string {
  try {
    return decodeURIComponent(encoded);
  } catch {
    throw new AppError(
      "upstream_error",
      `Cannot read the trust policy of role "${roleName}": IAM returned a document that is not URL-encoded`,
      { operation: "GetRole", roleName },
    );
  }
}

// The SDK names modeled errors after their class ("NoSuchEntityException") and keeps the wire code
// in `Code`; unmodeled ones ("AccessDenied", "Throttling") are named after the wire code.
function awsCode(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const { Code, name } = error as { Code?: unknown; name?: unknown };
  if (typeof Code === "string" && Code !== "") return Code;
  return typeof name === "string" ? name.replace(/Exception$/, "") : undefined;
}

function toAppError(error: unknown, operation: IamOperation, roleName: string): AppError {
  const code = awsCode(error);
  const meta =
    (error as { $metadata?: { httpStatusCode?: number; requestId?: string; attempts?: number } })
      ?.$metadata;
  const details = {
    operation,
    roleName,
    awsCode: code,
    awsMessage: error instanceof Error ? error.message : String(error),
    httpStatus: meta?.httpStatusCode,
    requestId: meta?.requestId,
    attempts: meta?.attempts,
  };
  const action = `iam:${operation}`;
  const cannot = operation === "GetRole"
    ? `Cannot read the trust policy of role "${roleName}"`
    : `Cannot update the trust policy of role "${roleName}"`;

  // Errors without an HTTP status never got an answer from IAM: timeouts, refused connections.
  if (meta?.httpStatusCode === undefined) {
    const why = code === "TimeoutError" ? "IAM did not answer in time" : "IAM could not be reached";
    return new AppError("upstream_error", `${cannot}: ${why}`, details);
  }
  switch (code) {
    case "LimitExceeded": {
      // IAM says e.g. "Cannot exceed quota for ACLSizePerRole: 2048".
      const quota = /ACLSizePerRole:\s*(\d+)/.exec(details.awsMessage)?.[1];
      const over = quota === undefined
        ? "the policy is over its IAM size quota"
        : `the policy is over its IAM size quota of ${quota} characters`;
      return new AppError("policy_quota_exceeded", `${cannot}: ${over}`, details);
    }
    case "AccessDenied":
      return new AppError("iam_access_denied", `${cannot}: IAM denied ${action}`, details);
    case "NoSuchEntity":
      return new AppError("iam_role_not_found", `${cannot}: the role does not exist`, details);
    case "MalformedPolicyDocument":
      return new AppError(
        "invalid_policy",
        `${cannot}: IAM rejected the document as malformed`,
        details,
      );
    default:
      return new AppError(
        "upstream_error",
        `${cannot}: ${action} failed${code === undefined ? "" : ` with "${code}"`}`,
        details,
      );
  }
}
