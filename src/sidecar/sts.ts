/**
 * The two STS calls of a role chain, made with fetch: AssumeRoleWithWebIdentity (unsigned) on the
 * proxy role, then AssumeRole (SigV4, its signer imported on first use) on the asset role.
 */

/** Temporary credentials as STS hands them out. */
export interface StsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken: string;
  /** Milliseconds since the epoch. */
  readonly expiration: number;
}

/** An STS answer that was not a success, with its code and message (never a credential). */
export class StsError extends Error {
  override readonly name = "StsError";
  constructor(readonly action: string, readonly code: string, detail: string) {
    super(`STS ${action} failed: ${code}${detail ? `: ${detail}` : ""}`);
  }
}

/** Where and how the chain calls STS. */
export interface StsOptions {
  readonly endpoint: string;
  /** The signing region of AssumeRole. */
  readonly region: string;
  readonly timeoutMs: number;
  readonly fetch: typeof fetch;
  readonly now: () => number;
}

const tag = (xml: string, name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1];

const unescapeXml = (s: string) =>
  s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&apos;/g, "'")
    .replace(/&amp;/g, "&");

async function post(
  o: StsOptions,
  action: string,
  params: Record<string, string>,
  sign?: (body: string) => Promise<Record<string, string>>,
): Promise<StsCredentials> {
  const body = new URLSearchParams({ Action: action, Version: "2011-06-15", ...params })
    .toString();
  const headers = sign
    ? await sign(body)
    : { "content-type": "application/x-www-form-urlencoded; charset=utf-8" };
  const res = await o.fetch(o.endpoint, {
    method: "POST",
    headers,
    body,
    signal: AbortSignal.timeout(o.timeoutMs),
  });
  const xml = await res.text();
  if (!res.ok) {
    throw new StsError(
      action,
      tag(xml, "Code") ?? `HTTP ${res.status}`,
      unescapeXml(tag(xml, "Message") ?? ""),
    );
  }
  const accessKeyId = tag(xml, "AccessKeyId");
  const secretAccessKey = tag(xml, "SecretAccessKey");
  const sessionToken = tag(xml, "SessionToken");
  const expiration = Date.parse(tag(xml, "Expiration") ?? "");
  if (!accessKeyId || !secretAccessKey || !sessionToken || Number.isNaN(expiration)) {
    throw new StsError(action, "MalformedAnswer", "the answer holds no complete credentials");
  }
  return {
    accessKeyId,
    secretAccessKey: unescapeXml(secretAccessKey),
    sessionToken: unescapeXml(sessionToken),
    expiration,
  };
}

/** AssumeRoleWithWebIdentity: the pod's token for the proxy role's credentials. */
export function assumeRoleWithWebIdentity(
  o: StsOptions,
  roleArn: string,
  webIdentityToken: string,
  sessionName: string,
  durationSeconds: number,
): Promise<StsCredentials> {
  return post(o, "AssumeRoleWithWebIdentity", {
    RoleArn: roleArn,
    RoleSessionName: sessionName,
    WebIdentityToken: webIdentityToken,
    DurationSeconds: String(durationSeconds),
  });
}

/** AssumeRole, signed with `source`: the proxy role's credentials for the asset role's. */
export function assumeRole(
  o: StsOptions,
  source: StsCredentials,
  roleArn: string,
  sessionName: string,
  durationSeconds: number,
): Promise<StsCredentials> {
  return post(o, "AssumeRole", {
    RoleArn: roleArn,
    RoleSessionName: sessionName,
    DurationSeconds: String(durationSeconds),
  }, async (body) => {
    // Loaded here, at the first credential asked for, not at the sidecar's start.
    const { signFormPost } = await import("./sigv4.ts");
    return await signFormPost({
      url: o.endpoint,
      body,
      region: o.region,
      service: "sts",
      credentials: source,
      now: o.now(),
    });
  });
}
