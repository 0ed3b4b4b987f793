import { describe, expect, it } from 'vitest';
import { isLiveDuplicate, LIVE_AGENT_WINDOW_MS, siteOfTags } from './enrolment';

describe('isLiveDuplicate', () => {
  const at = new Date('2026-12-01T12:00:00Z');
  const before = (ms: number) => new Date(at.getTime() - ms);
  it.each([
    ['no current agent', null, false],
    ['heard from just now', before(0), true],
    ['heard from at the edge of the window', before(LIVE_AGENT_WINDOW_MS), true],
    ['heard from just before the window', before(LIVE_AGENT_WINDOW_MS + 1), false],
    ['heard from after the request', new Date(at.getTime() + 60_000), true],
  ] as const)('%s', (_name, seen, expected) => {
    expect(isLiveDuplicate(seen, at)).toBe(expected);
  });
});

describe('siteOfTags', () => {
  it.each([
    [[], null],
    [['linux', 'prod'], null],
    [['prod', 'site:berlin'], 'berlin'],
    [['site:paris', 'site:berlin'], 'paris'],
    [['website:x'], null],
  ] as const)('%j → %s', (tags, expected) => {
    expect(siteOfTags(tags)).toBe(expected);
  });
});
