/**
 * Chat messages and conversation references (the chat area's data access). Returns plain objects.
 */
import { and, eq, isNull, sql } from 'drizzle-orm';
import type { Db } from './client';
import { chatConversations, chatMessages } from './schema/index';

export type ChatPlatform = 'slack' | 'teams';

export interface StoredChatMessage {
  cycleId: string;
  platform: ChatPlatform;
  conversationId: string;
  key: string;
  messageRef: string | null;
  threadRef: string | null;
  model: Record<string, unknown> | null;
}

export interface ChatMessageKey {
  cycleId: string;
  platform: ChatPlatform;
  conversationId: string;
  key: string;
}

function toMessage(r: typeof chatMessages.$inferSelect): StoredChatMessage {
  return {
    cycleId: r.cycleId,
    platform: r.platform as ChatPlatform,
    conversationId: r.conversationId,
    key: r.key,
    messageRef: r.messageRef,
    threadRef: r.threadRef,
    model: r.model,
  };
}

function where(k: ChatMessageKey) {
  return and(
    eq(chatMessages.cycleId, k.cycleId),
    eq(chatMessages.platform, k.platform),
    eq(chatMessages.conversationId, k.conversationId),
    eq(chatMessages.key, k.key),
  );
}

/** Returns null when no message was stored under this key. */
export async function findChatMessage(db: Db, k: ChatMessageKey): Promise<StoredChatMessage | null> {
  const [row] = await db.select().from(chatMessages).where(where(k)).limit(1);
  return row ? toMessage(row) : null;
}

/** Messages of a cycle on one platform (every conversation), optionally of one key. */
export async function chatMessagesOf(
  db: Db,
  cycleId: string,
  platform: ChatPlatform,
  key?: string,
): Promise<StoredChatMessage[]> {
  const rows = await db
    .select()
    .from(chatMessages)
    .where(
      and(
        eq(chatMessages.cycleId, cycleId),
        eq(chatMessages.platform, platform),
        key === undefined ? undefined : eq(chatMessages.key, key),
      ),
    );
  return rows.map(toMessage);
}

/**
 * Reserves the key before posting. Returns 'reserved' when this caller must post (and then call
 * setChatMessageRef), or the existing message when one is stored (or in flight: messageRef null).
 */
export async function reserveChatMessage(
  db: Db,
  k: ChatMessageKey & { threadRef?: string | null; model?: Record<string, unknown> | null },
): Promise<{ reserved: true } | { reserved: false; existing: StoredChatMessage }> {
  const inserted = await db
    .insert(chatMessages)
    .values({ ...k, threadRef: k.threadRef ?? null, model: k.model ?? null })
    .onConflictDoNothing()
    .returning({ cycleId: chatMessages.cycleId });
  if (inserted.length > 0) return { reserved: true };
  const existing = await findChatMessage(db, k);
  if (!existing)
    throw new Error(`chat message ${k.cycleId}/${k.platform}/${k.conversationId}/${k.key} vanished while reserving`);
  return { reserved: false, existing };
}

export async function setChatMessageRef(db: Db, k: ChatMessageKey, messageRef: string): Promise<void> {
  await db.update(chatMessages).set({ messageRef, updatedAt: new Date() }).where(where(k));
}

/** Drops a reservation whose post failed, so a retry posts again. */
export async function releaseChatMessage(db: Db, k: ChatMessageKey): Promise<void> {
  await db.delete(chatMessages).where(and(where(k), isNull(chatMessages.messageRef)));
}

export async function updateChatMessageModel(db: Db, k: ChatMessageKey, model: Record<string, unknown>): Promise<void> {
  await db.update(chatMessages).set({ model, updatedAt: new Date() }).where(where(k));
}

/** Finds a message by its platform reference (Slack ts, Teams activity id); null when unknown. */
export async function findChatMessageByRef(
  db: Db,
  platform: ChatPlatform,
  messageRef: string,
): Promise<StoredChatMessage | null> {
  const [row] = await db
    .select()
    .from(chatMessages)
    .where(and(eq(chatMessages.platform, platform), eq(chatMessages.messageRef, messageRef)))
    .limit(1);
  return row ? toMessage(row) : null;
}

// ---------------------------------------------------------------- conversations (Teams installs)

export interface StoredConversation {
  platform: ChatPlatform;
  conversationId: string;
  kind: string;
  reference: Record<string, unknown>;
  tenantId: string | null;
  installedBy: string | null;
}

/** Stores (or refreshes) a conversation reference; idempotent. */
export async function saveConversation(
  db: Db,
  c: Omit<StoredConversation, 'tenantId' | 'installedBy'> & { tenantId?: string | null; installedBy?: string | null },
): Promise<void> {
  await db
    .insert(chatConversations)
    .values({ ...c, tenantId: c.tenantId ?? null, installedBy: c.installedBy ?? null })
    .onConflictDoUpdate({
      target: [chatConversations.platform, chatConversations.conversationId],
      set: {
        reference: c.reference,
        kind: c.kind,
        tenantId: sql`coalesce(excluded.tenant_id, ${chatConversations.tenantId})`,
        updatedAt: new Date(),
      },
    });
}

export async function removeConversation(db: Db, platform: ChatPlatform, conversationId: string): Promise<boolean> {
  const rows = await db
    .delete(chatConversations)
    .where(and(eq(chatConversations.platform, platform), eq(chatConversations.conversationId, conversationId)))
    .returning({ id: chatConversations.conversationId });
  return rows.length > 0;
}

export async function listConversations(db: Db, platform: ChatPlatform): Promise<StoredConversation[]> {
  const rows = await db.select().from(chatConversations).where(eq(chatConversations.platform, platform));
  return rows.map((r) => ({
    platform: r.platform as ChatPlatform,
    conversationId: r.conversationId,
    kind: r.kind,
    reference: r.reference,
    tenantId: r.tenantId,
    installedBy: r.installedBy,
  }));
}
