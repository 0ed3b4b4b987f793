/**
 * Linking a chat identity to its person by the e-mail address its platform reports (Slack `users.info`, the
 * Teams roster), so that a person's Slack and Teams clicks count as one person's. Best effort: a failing or slow
 * lookup is logged and the vote goes on (its identity is then its own person). Only an identity linked to nobody
 * is looked up, and it is linked only to a person whose e-mail an admin recorded (`people link … email:`).
 */
import type { Db } from '../../db/client';
import { isLinked, linkByEmail } from '../../db/people';
import type { Logger } from '../../logging';

/** The e-mail address a platform holds for the identity, or undefined when it has none or will not say. */
export type EmailLookup = () => Promise<string | undefined>;

const LOOKUP_TIMEOUT_MS = 2_500;

/** Returns the person's name when the identity was linked now, else null. Never throws. */
export async function linkPersonByEmail(
  deps: { db: Db; logger: Logger; timeoutMs?: number },
  identity: string,
  lookup: EmailLookup,
): Promise<string | null> {
  try {
    if (await isLinked(deps.db, identity)) return null;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), deps.timeoutMs ?? LOOKUP_TIMEOUT_MS);
    });
    const email = await Promise.race([lookup(), timeout]).finally(() => clearTimeout(timer));
    if (!email) return null;
    const person = await linkByEmail(deps.db, identity, email, 'system:chat-directory');
    if (person) deps.logger.info({ identity, person }, 'identity linked to its person by e-mail');
    return person;
  } catch (err) {
    deps.logger.warn({ err, identity }, 'looking up the e-mail of a chat identity failed; it votes as its own person');
    return null;
  }
}
