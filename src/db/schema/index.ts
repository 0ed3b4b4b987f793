export * from './core';
export * from './identities';
export * from './cycles';
export * from './web';
export * from './agents';
export * from './chat';
export * from './api';
