/** The wire contract of POST and DELETE /service_account. */

import * as v from "valibot";
import { DNS_1123_LABEL, DNS_1123_LABEL_RULE } from "../core/kube_names.ts";

/** The body of both methods. */
export const ServiceAccountBody = v.object({
  service_account_name: v.pipe(
    v.string("service_account_name must be a string"),
    v.regex(
      DNS_1123_LABEL,
      `service_account_name must be a DNS-1123 label: ${DNS_1123_LABEL_RULE}`,
    ),
  ),
});

const answer = <S extends string>(statuses: readonly [S, S]) =>
  v.strictObject({
    status: v.picklist(statuses),
    service_account_name: v.string(),
    namespace: v.string(),
  });

/** The answer of POST /service_account. */
export const CreatedServiceAccountAnswer = answer(["created", "exists"]);

/** The answer of DELETE /service_account. */
export const DeletedServiceAccountAnswer = answer(["deleted", "absent"]);
