import type { Channel } from '../domain/cycle';
import type { AnyCommandOutcome } from './outcome';

/** Who typed a command, and where. */
export interface CommandCaller {
  identity: string;
  channel: Channel;
  /** Slack channel id / Teams conversation id the command was typed in. */
  conversationId?: string;
}

/**
 * Runs one typed command line (`/patch …` in Slack, a message to the Teams bot): parse, read the caller's roles,
 * authorise and execute. Never throws: words it cannot read, refusals and failures come back as `ok: false`.
 */
export type CommandRunner = (text: string, caller: CommandCaller) => Promise<AnyCommandOutcome>;
