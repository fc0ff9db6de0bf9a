/**
 * A notebook's view, with the AWS SDK for JavaScript: resolves credentials for a profile of
 * AWS_CONFIG_FILE through the SDK's own chain (web identity, then AssumeRole) and prints the caller
 * identity as JSON. STS is reached through AWS_ENDPOINT_URL_STS, which the SDK honours at every step.
 */
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { fromIni } from "@aws-sdk/credential-providers";

const profile = Deno.args[0];
const region = Deno.env.get("AWS_REGION") ?? "us-east-1";
const sts = new STSClient({ region, credentials: fromIni({ profile, clientConfig: { region } }) });
try {
  const id = await sts.send(new GetCallerIdentityCommand({}));
  console.log(JSON.stringify({ Account: id.Account, Arn: id.Arn }));
} finally {
  sts.destroy();
}
