/**
 * The message ledger both outbound chat channels (Slack, Teams) post through, so that a retried activity
 * never posts twice: reserve the message's key (a row inserted before posting, ON CONFLICT DO NOTHING), post,
 * record the platform's reference (Slack `channel:ts`, Teams activity id); when the post fails, release the
 * reservation so that the retry posts again. Keys are (cycle, platform, conversation, key); see db/chat.ts.
 */
import type { Db } from '../../db/client';
import {
  releaseChatMessage,
  reserveChatMessage,
  setChatMessageRef,
  type ChatMessageKey,
  type StoredChatMessage,
} from '../../db/chat';
import { CodedError, ErrorCode } from '../../domain/errors';

export type PostOnceResult = { posted: true; ref: string } | { posted: false; existing: StoredChatMessage };

export interface Delivery {
  /** Sends the message; returns its platform reference. */
  send: () => Promise<string>;
  /** What the send was, for the error when it fails: "Slack chat.postMessage to C123". */
  what: string;
}

export class MessageLedger {
  constructor(private readonly db: Db) {}

  /**
   * Reserves `key` and, when this caller got it, posts; otherwise returns the message already stored under it
   * (its messageRef is null while another caller's post is in flight).
   */
  async postOnce(
    key: ChatMessageKey,
    delivery: Delivery,
    stored: { threadRef?: string | null; model?: Record<string, unknown> } = {},
  ): Promise<PostOnceResult> {
    const r = await reserveChatMessage(this.db, { ...key, ...stored });
    if (!r.reserved) return { posted: false, existing: r.existing };
    return { posted: true, ref: await this.post(key, delivery) };
  }

  /**
   * Posts under a key this caller has reserved: records the reference, or releases the reservation and throws a
   * retryable INTEGRATION_FAILED naming what failed.
   */
  private async post(key: ChatMessageKey, delivery: Delivery): Promise<string> {
    try {
      const ref = await delivery.send();
      await setChatMessageRef(this.db, key, ref);
      return ref;
    } catch (e) {
      await releaseChatMessage(this.db, key);
      throw new CodedError(ErrorCode.IntegrationFailed, `${delivery.what} failed: ${(e as Error).message}`, {
        cause: e,
        retryable: true,
      });
    }
  }
}
