/**
 * The chain a workspace's profile makes, called directly: AssumeRoleWithWebIdentity on the proxy
 * role with the pod's token, then AssumeRole on the asset role with the proxy session. Tests run it
 * through the strict STS (tests/fixtures/strict_sts.ts), where a revoked subject is refused.
 */
import {
  AssumeRoleCommand,
  AssumeRoleWithWebIdentityCommand,
  type Credentials,
  STSClient,
} from "@aws-sdk/client-sts";

/** The asset session's ARN, or the AWS error name of the step that was refused. */
export type ChainOutcome = { ok: true; arn: string } | { ok: false; step: string; error: string };

/** The region every STS client here uses; the strict STS and moto take any. */
const REGION = "us-east-1";

/** Runs the chain against the STS at `endpoint`; never throws for an AWS refusal. */
export async function assumeChain(
  endpoint: string,
  token: string,
  pair: { proxyRoleArn: string; assetRoleArn: string },
  sessionName = "jdoe",
): Promise<ChainOutcome> {
  const web = await call(endpoint, undefined, (sts) =>
    sts.send(
      new AssumeRoleWithWebIdentityCommand({
        RoleArn: pair.proxyRoleArn,
        RoleSessionName: sessionName,
        WebIdentityToken: token,
      }),
    ));
  if ("error" in web) return { ok: false, step: "AssumeRoleWithWebIdentity", error: web.error };
  const asset = await call(
    endpoint,
    web.value.Credentials,
    (sts) =>
      sts.send(new AssumeRoleCommand({ RoleArn: pair.assetRoleArn, RoleSessionName: sessionName })),
  );
  if ("error" in asset) return { ok: false, step: "AssumeRole", error: asset.error };
  return { ok: true, arn: asset.value.AssumedRoleUser!.Arn! };
}

async function call<T>(
  endpoint: string,
  session: Credentials | undefined,
  send: (sts: STSClient) => Promise<T>,
): Promise<{ value: T } | { error: string }> {
  const sts = new STSClient({
    region: REGION,
    endpoint,
    maxAttempts: 1,
    // AssumeRoleWithWebIdentity is unsigned; the SDK still wants credentials to build the client.
    credentials: session === undefined ? { accessKeyId: "unused", secretAccessKey: "unused" } : {
      accessKeyId: session.AccessKeyId!,
      secretAccessKey: session.SecretAccessKey!,
      sessionToken: session.SessionToken!,
    },
  });
  try {
    return { value: await send(sts) };
  } catch (error) {
    const name = (error as { name?: string }).name;
    if (name === undefined || (error as { $metadata?: unknown }).$metadata === undefined) {
      throw error;
    }
    return { error: name };
  } finally {
    sts.destroy();
  }
}
