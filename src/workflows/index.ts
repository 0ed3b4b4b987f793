// Every workflow the worker registers. Workflow code only: deterministic, no I/O (see eslint.config.js).
export { probeWorkflow } from './probe';
export { patchCycleWorkflow } from './patch-cycle';
export { deploymentWaveWorkflow } from './deployment-wave';
export { fleetScanWorkflow } from './fleet-scan';
export { complianceDigestWorkflow } from './digest';
