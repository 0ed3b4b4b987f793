/**
 * The activity Teams sends when the bot is added to a channel (Bot Framework `installationUpdate`, action `add`),
 * for the one caller in the product that plays Teams: the demo (and the end-to-end tests that do what it does).
 * The bot keeps the conversation reference it carries for proactive cards.
 * https://learn.microsoft.com/en-us/microsoftteams/platform/bots/how-to/conversations/subscribe-to-conversation-events
 */
export function installationUpdateActivity(o: {
  id: string;
  serviceUrl: string;
  conversationId: string;
  tenantId: string;
  fromId: string;
}): Record<string, unknown> {
  return {
    type: 'installationUpdate',
    action: 'add',
    id: o.id,
    serviceUrl: o.serviceUrl,
    channelId: 'msteams',
    from: { id: o.fromId },
    recipient: { id: '28:patchops-bot', name: 'patchops' },
    conversation: { id: o.conversationId, conversationType: 'channel', tenantId: o.tenantId },
    channelData: { tenant: { id: o.tenantId } },
  };
}
