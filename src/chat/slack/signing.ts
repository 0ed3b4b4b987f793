/**
 * Signs a request exactly as Slack does (`v0=` HMAC-SHA256 of `v0:{timestamp}:{body}` under the signing secret),
 * for the one caller in the product that plays Slack: the demo's approval clicks. Verification is Bolt's.
 * https://api.slack.com/authentication/verifying-requests-from-slack
 */
import { createHmac } from 'node:crypto';

export function slackSignature(secret: string, timestamp: number, body: string): string {
  return `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
}

/** The headers Slack sends with a signed request (form-encoded unless told otherwise). */
export function signedSlackHeaders(
  secret: string,
  body: string,
  options: { timestamp?: number; contentType?: string } = {},
): Record<string, string> {
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
  return {
    'content-type': options.contentType ?? 'application/x-www-form-urlencoded',
    'x-slack-request-timestamp': String(timestamp),
    'x-slack-signature': slackSignature(secret, timestamp, body),
  };
}
