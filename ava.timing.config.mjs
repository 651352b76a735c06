// Timing specs (event-loop delay) run alone, after the main suite, so no other spec file
// competes with them for the 2 cores of the CI machine.
export default {
  extensions: { ts: 'module' },
  nodeArguments: ['--import', '@oxc-node/core/register'],
  workerThreads: false,
  timeout: '2m',
  files: ['__test__/event-loop.spec.ts'],
}
