export * from './core';
export * from './identities';
export * from './cycles';
export * from './agents';
