/**
 * People and their identities: who is behind `slack:U0123`, `teams:<aad object id>`, `web:alice`, `api:…`.
 * Quorum counts people and separation of duties compares people (domain/approval.ts); the person is resolved
 * where a vote or a start enters (the cycle service) and carried to the workflow in its payload (docs/decisions.md,
 * "People vote, resolved where the vote enters").
 *
 * An identity linked to nobody is its own person: personOf() returns the identity itself. A linked identity's
 * person key is `person:<name>`, which no identity can be (names hold no colon).
 */
import { asc, eq, sql } from 'drizzle-orm';
import { appendAudit } from './audit';
import type { Db } from './client';
import { people, personIdentities } from './schema/index';
import { CodedError, ErrorCode } from '../domain/errors';

export interface PersonDto {
  name: string;
  email: string | null;
  identities: string[];
}

const NAME = /^[a-z0-9][a-z0-9._@-]{0,63}$/i;
const IDENTITY = /^[a-z]+:\S{1,200}$/;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/** The key a person is compared by: `person:<name>`. */
export function personKey(name: string): string {
  return `person:${name}`;
}

export function checkPersonName(name: string): void {
  if (!NAME.test(name))
    throw new CodedError(
      ErrorCode.InvalidInput,
      `"${name}" is not a person's name: letters, digits, . _ @ - (no colon), up to 64`,
    );
}

export function checkIdentity(identity: string): void {
  if (!IDENTITY.test(identity) || identity.startsWith('person:')) {
    throw new CodedError(
      ErrorCode.InvalidInput,
      `"${identity}" is not an identity; they look like slack:U0123, teams:<aad object id>, web:alice, api:<token name>`,
    );
  }
}

/** The person behind an identity: `person:<name>` when linked, else the identity itself (its own person). */
export async function personOf(db: Db, identity: string): Promise<string> {
  const rows = await db
    .select({ name: people.name })
    .from(personIdentities)
    .innerJoin(people, eq(people.id, personIdentities.personId))
    .where(eq(personIdentities.identity, identity))
    .limit(1);
  return rows[0] ? personKey(rows[0].name) : identity;
}

/** The person behind an identity and every identity linked to them now (just the identity when linked to nobody). */
export async function personWithIdentities(
  db: Db,
  identity: string,
): Promise<{ person: string; identities: string[] }> {
  const rows = await db
    .select({ name: people.name, identity: personIdentities.identity })
    .from(personIdentities)
    .innerJoin(people, eq(people.id, personIdentities.personId))
    .where(sql`${personIdentities.personId} = (select person_id from person_identities where identity = ${identity})`)
    .orderBy(asc(personIdentities.identity));
  if (rows.length === 0) return { person: identity, identities: [identity] };
  return { person: personKey(rows[0]!.name), identities: rows.map((r) => r.identity) };
}

/** Is this identity linked to a person? */
export async function isLinked(db: Db, identity: string): Promise<boolean> {
  const rows = await db
    .select({ identity: personIdentities.identity })
    .from(personIdentities)
    .where(eq(personIdentities.identity, identity))
    .limit(1);
  return rows.length > 0;
}

/**
 * Links an identity to a person, creating the person when new (and setting its e-mail when given and it has
 * none). Idempotent for the same pair; an identity linked to someone else is refused (unlink it first).
 * Returns whether anything changed. Audited as `person.linked`.
 */
export async function linkIdentity(
  db: Db,
  link: { person: string; identity: string; email?: string; by: string },
): Promise<{ changed: boolean }> {
  checkPersonName(link.person);
  checkIdentity(link.identity);
  if (link.email !== undefined && !EMAIL.test(link.email))
    throw new CodedError(ErrorCode.InvalidInput, `"${link.email}" is not an e-mail address`);
  const changed = await db.transaction(async (tx) => {
    await tx
      .insert(people)
      .values({ name: link.person, createdBy: link.by })
      .onConflictDoNothing({ target: people.name });
    const [person] = await tx.select().from(people).where(eq(people.name, link.person)).for('update');
    if (link.email && !person!.email) {
      const [taken] = await tx
        .select({ name: people.name })
        .from(people)
        .where(sql`lower(${people.email}) = lower(${link.email})`);
      if (taken) throw new CodedError(ErrorCode.Conflict, `${link.email} is already the e-mail of ${taken.name}`);
      await tx.update(people).set({ email: link.email }).where(eq(people.id, person!.id));
    }
    const [current] = await tx
      .select({ name: people.name })
      .from(personIdentities)
      .innerJoin(people, eq(people.id, personIdentities.personId))
      .where(eq(personIdentities.identity, link.identity));
    if (current && current.name !== link.person) {
      throw new CodedError(
        ErrorCode.Conflict,
        `${link.identity} is linked to ${current.name}; unlink it first (people unlink ${link.identity})`,
      );
    }
    if (current) return false;
    await tx.insert(personIdentities).values({ identity: link.identity, personId: person!.id, linkedBy: link.by });
    return true;
  });
  if (changed) {
    await appendAudit(db, {
      actor: link.by,
      action: 'person.linked',
      subjectType: 'person',
      subjectId: link.person,
      details: { identity: link.identity, ...(link.email ? { email: link.email } : {}) },
    });
  }
  return { changed };
}

/** Unlinks an identity (it becomes its own person again); returns the person it was linked to, or null. Audited. */
export async function unlinkIdentity(db: Db, identity: string, by: string): Promise<string | null> {
  checkIdentity(identity);
  const [row] = await db
    .select({ name: people.name })
    .from(personIdentities)
    .innerJoin(people, eq(people.id, personIdentities.personId))
    .where(eq(personIdentities.identity, identity));
  if (!row) return null;
  const removed = await db
    .delete(personIdentities)
    .where(eq(personIdentities.identity, identity))
    .returning({ identity: personIdentities.identity });
  if (removed.length === 0) return null;
  await appendAudit(db, {
    actor: by,
    action: 'person.unlinked',
    subjectType: 'person',
    subjectId: row.name,
    details: { identity },
  });
  return row.name;
}

/** Everyone with their identities, by name. */
export async function listPeople(db: Db): Promise<PersonDto[]> {
  const rows = await db
    .select({ name: people.name, email: people.email, identity: personIdentities.identity })
    .from(people)
    .leftJoin(personIdentities, eq(personIdentities.personId, people.id))
    .orderBy(asc(people.name), asc(personIdentities.identity));
  const byName = new Map<string, PersonDto>();
  for (const r of rows) {
    const p = byName.get(r.name) ?? { name: r.name, email: r.email, identities: [] };
    if (r.identity) p.identities.push(r.identity);
    byName.set(r.name, p);
  }
  return [...byName.values()];
}

/**
 * Links an identity that has no person to the person whose e-mail this is (the address a platform reported for
 * it: Slack users.info, the Teams roster). Returns the person's name when linked, else null (no such person, or
 * the identity is linked already). Audited as `person.linked` with `via: email`.
 */
export async function linkByEmail(db: Db, identity: string, email: string, by: string): Promise<string | null> {
  if (!EMAIL.test(email) || (await isLinked(db, identity))) return null;
  const [person] = await db
    .select({ id: people.id, name: people.name })
    .from(people)
    .where(sql`lower(${people.email}) = lower(${email})`);
  if (!person) return null;
  const inserted = await db
    .insert(personIdentities)
    .values({ identity, personId: person.id, linkedBy: by })
    .onConflictDoNothing()
    .returning({ identity: personIdentities.identity });
  if (inserted.length === 0) return null;
  await appendAudit(db, {
    actor: by,
    action: 'person.linked',
    subjectType: 'person',
    subjectId: person.name,
    details: { identity, via: 'email', email },
  });
  return person.name;
}

/**
 * Records an e-mail a platform reported for one of the person's identities, when the person has none and no other
 * person has this address. Returns whether it was recorded (audited as `person.email`); never refuses.
 */
export async function recordPersonEmail(db: Db, name: string, email: string, by: string): Promise<boolean> {
  if (!EMAIL.test(email)) return false;
  const [taken] = await db
    .select({ name: people.name })
    .from(people)
    .where(sql`lower(${people.email}) = lower(${email})`);
  if (taken) return false;
  const updated = await db
    .update(people)
    .set({ email })
    .where(sql`${people.name} = ${name} and ${people.email} is null`)
    .returning({ name: people.name })
    .catch(() => []); // a concurrent link took the address first (people_email_uq)
  if (updated.length === 0) return false;
  await appendAudit(db, {
    actor: by,
    action: 'person.email',
    subjectType: 'person',
    subjectId: name,
    details: { email, via: 'directory' },
  });
  return true;
}
