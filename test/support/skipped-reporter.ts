import type { Reporter, TestModule } from 'vitest/node';

/**
 * Lists every skipped test by name at the end of the run, so a capability gap of a store (a
 * conformance case registered as skipped) is visible in CI output instead of hiding in a count.
 */
export default class SkippedReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const skipped: string[] = [];
    for (const module of testModules) {
      for (const test of module.children.allTests('skipped')) skipped.push(`  ${module.moduleId.split('/test/').at(-1)} > ${test.fullName}`);
    }
    if (skipped.length === 0) return;
    process.stdout.write(`\nSkipped tests (${skipped.length}), each with the reason in its name:\n${skipped.sort().join('\n')}\n`);
  }
}
