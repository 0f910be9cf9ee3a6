import diagnostics from 'node:diagnostics_channel';

/** The messages published on a diagnostics channel while `fn` runs. */
export async function published(channel: string, fn: () => Promise<unknown>): Promise<unknown[]> {
  const messages: unknown[] = [];
  const onMessage = (message: unknown): void => {
    messages.push(message);
  };
  diagnostics.subscribe(channel, onMessage);
  try {
    await fn();
  } finally {
    diagnostics.unsubscribe(channel, onMessage);
  }
  return messages;
}
