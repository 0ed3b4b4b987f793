import { index, jsonb, pgTable, primaryKey, text, timestamp } from 'drizzle-orm/pg-core';

/**
 * Chat area (Slack and Teams). Owned by the bot: messages posted per (cycle, platform, conversation, key)
 * so a retried notification updates the message it already posted instead of posting again, and the
 * Teams conversation references the bot was installed into (for proactive messages).
 */
export const chatMessages = pgTable(
  'chat_messages',
  {
    cycleId: text().notNull(),
    /** slack | teams */
    platform: text().notNull(),
    /** Slack channel id, or Teams conversation id. */
    conversationId: text().notNull(),
    /** What the message is: `approval`, `pause`, `summary`, `stage:<stage>:<wave>:<state>`. */
    key: text().notNull(),
    /** Slack message ts, or Teams activity id; null while the post is in flight. */
    messageRef: text(),
    /** Slack thread ts / Teams reply-to activity id the message was posted under. */
    threadRef: text(),
    /** The card model the message was rendered from (approval, pause), so updates re-render it. */
    model: jsonb().$type<Record<string, unknown>>(),
    createdAt: timestamp({ withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp({ withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.cycleId, t.platform, t.conversationId, t.key] }),
    index('chat_messages_ref_idx').on(t.platform, t.messageRef),
  ],
);

export const chatConversations = pgTable(
  'chat_conversations',
  {
    /** slack | teams */
    platform: text().notNull(),
    conversationId: text().notNull(),
    /** personal | groupChat | channel */
    kind: text().notNull().default('personal'),
    /** Bot Framework ConversationReference (serviceUrl, conversation, bot, channelId) for proactive messages. */
    reference: jsonb().$type<Record<string, unknown>>().notNull(),
    tenantId: text(),
    installedBy: text(),
    createdAt: timestamp({ withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp({ withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.platform, t.conversationId] })],
);

/**
 * Inbound deliveries already taken (a Slack event or interaction, a ServiceNow notification), keyed by the
 * sender's own delivery id: shared by every server process, so a retry that reaches another server is still
 * known as a retry. An expired row is claimable again, and swept.
 */
export const deliveryReceipts = pgTable(
  'delivery_receipts',
  {
    key: text().primaryKey(),
    seenAt: timestamp({ withTimezone: true }).notNull().defaultNow(),
    /** From then on the key is claimable again (and swept). */
    expiresAt: timestamp({ withTimezone: true }).notNull(),
  },
  (t) => [index('delivery_receipts_expires_at_idx').on(t.expiresAt)],
);
