import type { KeyObject } from 'node:crypto';
import { signDownloadToken } from '../../shared/download-token';
import type { Clock } from './clock';

/** Lifetime of a download token: also how long a revoked agent can still fetch from a distribution point. */
export const DOWNLOAD_TOKEN_TTL_SECONDS = 15 * 60;

/** Tokens kept at most; past this the cache starts over (a miss only costs one signature). */
const MAX_CACHED_TOKENS = 500_000;

interface TokenEntry {
  token: string;
  site: string;
  /** Unix seconds. */
  exp: number;
}

/**
 * Issues the download tokens (src/shared/download-token.ts) agents show distribution points. An endpoint's token is
 * reused while more than half its lifetime is left, so a poll signs at most once per endpoint every few minutes.
 */
export class DownloadTokenIssuer {
  private readonly tokens = new Map<string, TokenEntry>(); // endpoint → its current token
  /** Tokens signed so far (stats). */
  signed = 0;

  constructor(
    private readonly signingKey: () => Promise<{ privateKey: KeyObject }>,
    private readonly clock: Clock,
    private readonly ttlSeconds = DOWNLOAD_TOKEN_TTL_SECONDS,
  ) {}

  /** The endpoint's download token for its site: the cached one while more than half its lifetime is left, else a new one. */
  async tokenFor(endpointId: string, site: string): Promise<string> {
    const nowSeconds = Math.floor(this.clock() / 1000);
    const cached = this.tokens.get(endpointId);
    if (cached && cached.site === site && cached.exp - nowSeconds > this.ttlSeconds / 2) return cached.token;
    const key = await this.signingKey();
    const exp = nowSeconds + this.ttlSeconds;
    const token = signDownloadToken({ sub: endpointId, site, exp }, key.privateKey);
    this.signed += 1;
    if (this.tokens.size > MAX_CACHED_TOKENS) this.tokens.clear();
    this.tokens.set(endpointId, { token, site, exp });
    return token;
  }
}
