/**
 * Secrets the server hands out once and stores only as a hash: enrol secrets, node keys, distribution point tokens.
 */
import { createHash, randomBytes } from 'node:crypto';

export const sha256Hex = (s: string | Buffer): string => createHash('sha256').update(s).digest('hex');

/** A fresh secret of 256 random bits, URL-safe. */
export const randomSecret = (): string => randomBytes(32).toString('base64url');
