/**
 * Slack's answer to "who is this identity": `users.info` → `user.profile.email`. Slack includes the address only
 * for apps with the `users:read.email` scope; without it (or for an unknown user, `user_not_found`) there is none.
 */
import type { IdentityDirectory } from '../../domain/ports';

/** The part of a Slack WebClient this needs (Bolt's `app.client` and our own WebClient both fit). */
export interface SlackUsersApi {
  users: { info(args: { user: string }): Promise<{ user?: { profile?: { email?: string } } }> };
}

/** The e-mail Slack holds for a user id, or undefined; throws what the Web API throws (user_not_found, network). */
export async function slackUserEmail(client: SlackUsersApi, userId: string): Promise<string | undefined> {
  const r = await client.users.info({ user: userId });
  return r.user?.profile?.email || undefined;
}

/** Answers for `slack:U…` identities only. */
export class SlackIdentityDirectory implements IdentityDirectory {
  constructor(private readonly client: SlackUsersApi) {}

  async emailOf(identity: string): Promise<string | undefined> {
    if (!identity.startsWith('slack:')) return undefined;
    return slackUserEmail(this.client, identity.slice('slack:'.length));
  }
}
