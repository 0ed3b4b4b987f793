export * from './core';
export * from './identities';
export * from './cycles';
