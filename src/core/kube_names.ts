/** Kubernetes name rules that the wire contract and the Kubernetes adapter both state. */

/** A DNS-1123 label, as the platform's per-user service-account names are. */
export const DNS_1123_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** What {@link DNS_1123_LABEL} asks for, in words. */
export const DNS_1123_LABEL_RULE = '1 to 63 lowercase letters, digits and inner "-"';
