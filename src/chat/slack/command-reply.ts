/**
 * A `/patch` reply in Block Kit, from the command's view (core/command-view.ts): the title, the facts as
 * fields, the other lines preformatted. `text` keeps all the words for notifications and old clients.
 * https://api.slack.com/reference/block-kit/blocks#section
 */
import type { AnyCommandOutcome } from '../../commands/outcome';
import { slackEscape, type SlackBlock, type SlackMessage } from '../core/blocks';
import { commandView } from '../core/command-view';

/** Section text and fields are limited (3,000 and 2,000 characters; 10 fields). */
const MAX_TEXT = 2_900;
const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

export function slackCommandReply(outcome: AnyCommandOutcome): SlackMessage {
  const v = commandView(outcome);
  const blocks: SlackBlock[] = [
    {
      type: 'section',
      text: {
        type: 'mrkdwn',
        text: clip(v.isError ? `:warning: ${slackEscape(v.title)}` : `*${slackEscape(v.title)}*`, MAX_TEXT),
      },
    },
  ];
  if (v.facts.length) {
    blocks.push({
      type: 'section',
      fields: v.facts
        .slice(0, 10)
        .map((f) => ({ type: 'mrkdwn', text: clip(`*${slackEscape(f.title)}*\n${slackEscape(f.value)}`, 1_900) })),
    });
  }
  if (v.lines.length)
    blocks.push({
      type: 'section',
      text: { type: 'mrkdwn', text: `\`\`\`${clip(slackEscape(v.lines.join('\n')), MAX_TEXT - 6)}\`\`\`` },
    });
  return { text: v.text, blocks };
}
