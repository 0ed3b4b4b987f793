// Every workflow the worker registers. Workflow code only: deterministic, no I/O (see eslint.config.js).
export { probeWorkflow } from './probe';
