/**
 * The enrolment rules the data layer applies: how many enrolments of one machine may wait for an admin, when a
 * second agent claiming a machine id counts as a live duplicate, and how an endpoint's site is read from its tags.
 * Pure: time comes in as arguments.
 */

/** Enrolments of one machine that may wait for approval at once; more are refused (409) until an admin decides. */
export const MAX_PENDING_ENROLLMENTS = 5;

/** How recently an endpoint's agent must have been heard from for a second claimant to count as a live duplicate. */
export const LIVE_AGENT_WINDOW_MS = 15 * 60_000;

/**
 * Whether an enrolment made at `requestedAt` competes with a live agent: the endpoint's current agent (null when it
 * has no active key) was heard from after the request, or within LIVE_AGENT_WINDOW_MS before it.
 */
export function isLiveDuplicate(currentAgentSeenAt: Date | null, requestedAt: Date): boolean {
  return currentAgentSeenAt !== null && requestedAt.getTime() - currentAgentSeenAt.getTime() <= LIVE_AGENT_WINDOW_MS;
}

const SITE_TAG = 'site:';

/** The site named by an endpoint's `site:<site>` tag; null when it has none. */
export function siteOfTags(tags: readonly string[]): string | null {
  return tags.find((t) => t.startsWith(SITE_TAG))?.slice(SITE_TAG.length) ?? null;
}
