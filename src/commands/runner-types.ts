import type { Channel } from '../domain/cycle';

/** Who typed a command, and where. */
export interface CommandCaller {
  identity: string;
  channel: Channel;
  /** Slack channel id / Teams conversation id the command was typed in. */
  conversationId?: string;
}

/** Runs one typed command line (`/patch …` in Slack, a message to the Teams bot): parse, authorise, execute. */
export type CommandRunner = (text: string, caller: CommandCaller) => Promise<{ text: string; data?: unknown }>;
