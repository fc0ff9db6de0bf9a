import assert from "node:assert/strict";
import { SignatureV4 } from "@smithy/signature-v4";
import { Sha256 } from "@aws-crypto/sha256-js";
import { signFormPost } from "./sigv4.ts";

const credentials = {
  accessKeyId: "ASIAEXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
  sessionToken: "FwoGZXIvYXdzEXAMPLE//token+with/odd=chars",
};

for (const url of ["https://sts.us-east-1.amazonaws.com/", "http://127.0.0.1:5000"]) {
  Deno.test(`the signature is the AWS SDK's own for the same request (${url})`, async () => {
    const now = Date.UTC(2026, 11, 4, 16, 1, 2);
    const body =
      "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A222222222222%3Arole%2Fx&RoleSessionName=jdoe";
    const ours = await signFormPost({
      url,
      body,
      region: "us-east-1",
      service: "sts",
      credentials,
      now,
    });
    const u = new URL(url);
    const signer = new SignatureV4({
      service: "sts",
      region: "us-east-1",
      credentials,
      sha256: Sha256,
    });
    const theirs = await signer.sign({
      method: "POST",
      protocol: u.protocol,
      hostname: u.hostname,
      port: u.port ? Number(u.port) : undefined,
      path: u.pathname,
      query: {},
      headers: { "content-type": ours["content-type"], host: u.host },
      body,
    }, { signingDate: new Date(now) });
    assert.equal(ours.authorization, theirs.headers["authorization"]);
    assert.equal(ours["x-amz-security-token"], credentials.sessionToken);
  });
}
