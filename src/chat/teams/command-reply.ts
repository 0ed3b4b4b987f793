/**
 * A reply to a command typed to the Teams bot, from the command's view (core/command-view.ts): when the verb's
 * data has facts (status, report), the title as text over an Adaptive Card with a FactSet; else the words as
 * markdown text.
 */
import { CardFactory, type Activity } from 'botbuilder';
import type { AnyCommandOutcome } from '../../commands/outcome';
import { factsCard } from '../core/adaptive';
import { commandView } from '../core/command-view';

export function teamsCommandReply(outcome: AnyCommandOutcome): Partial<Activity> {
  const v = commandView(outcome);
  if (v.isError || v.facts.length === 0) return { type: 'message', text: v.text, textFormat: 'markdown' };
  return {
    type: 'message',
    text: v.title,
    textFormat: 'plain',
    attachments: [CardFactory.adaptiveCard(factsCard(v.facts, v.lines))],
  };
}
