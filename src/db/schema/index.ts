export * from './core';
export * from './identities';
