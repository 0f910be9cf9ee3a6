#!/usr/bin/env node
import { run } from './run.js';
import type { CliIO } from './run.js';

const io: CliIO = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
  cwd: process.cwd(),
  async readStdin() {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin as AsyncIterable<Buffer>) chunks.push(chunk);
    return Buffer.concat(chunks).toString('utf8');
  },
  waitForStop() {
    return new Promise((resolve) => {
      const stop = (signal: NodeJS.Signals): void => {
        process.off('SIGTERM', stop);
        process.off('SIGINT', stop);
        // A second signal while draining stops at once.
        const force = (): void => process.exit(1);
        process.once('SIGTERM', force);
        process.once('SIGINT', force);
        resolve(signal);
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    });
  },
};

process.exitCode = await run(process.argv.slice(2), io);
