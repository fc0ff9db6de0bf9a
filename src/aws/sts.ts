/** STS adapter: who the server's own credentials are (GetCallerIdentity), asked once at start. */

import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { AppError } from "../lib/errors.ts";

/** Options of {@link getCallerArn}. */
export interface CallerIdentityOptions {
  readonly region: string;
  /** Overrides the STS endpoint, e.g. a local moto server in tests. */
  readonly endpoint?: string;
  /** Deadline of one HTTP attempt; default 5000 ms. */
  readonly timeoutMs?: number;
}

/**
 * The ARN of the server's credentials, from STS GetCallerIdentity (which needs no permission).
 * Throws `upstream_error` naming the endpoint when STS cannot answer.
 */
export async function getCallerArn(options: CallerIdentityOptions): Promise<string> {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const client = new STSClient({
    region: options.region,
    endpoint: options.endpoint,
    maxAttempts: 3,
    requestHandler: {
      connectionTimeout: timeoutMs,
      requestTimeout: timeoutMs,
      throwOnRequestTimeout: true,
    },
  });
  try {
    const { Arn } = await client.send(new GetCallerIdentityCommand({}));
    if (Arn === undefined) throw new Error("STS returned no Arn");
    return Arn;
  } catch (error) {
    const where = options.endpoint ?? `the STS endpoint of region ${options.region}`;
    throw new AppError(
      "upstream_error",
      `Cannot learn the server's own AWS identity from STS GetCallerIdentity at ${where}: ${
        error instanceof Error ? error.message : String(error)
      }`,
      { operation: "GetCallerIdentity" },
    );
  } finally {
    client.destroy();
  }
}
