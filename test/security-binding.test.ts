import { randomBytes } from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SessionManager } from '../src/core/manager.js';
import { CHANNELS } from '../src/core/telemetry.js';
import type { AnomalyEvent } from '../src/core/telemetry.js';
import { firstForwardedFor, SessionRuntime } from '../src/adapters/runtime.js';
import type { SessionObject } from '../src/adapters/view.js';
import { createBindingCheck, networkOf } from '../src/security/binding.js';
import { memoryStore } from '../src/stores/memory.js';

const SECRET = 'binding-test-secret-0123456789abcdefghijklm';
const KEY = randomBytes(32);
const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0';
const CURL = 'curl/8.5.0';

describe('binding signals', () => {
  let events: AnomalyEvent[];
  const onAnomaly = (message: unknown): void => {
    events.push(message as AnomalyEvent);
  };
  let manager: SessionManager;

  beforeEach(() => {
    events = [];
    diagnostics.subscribe(CHANNELS.anomaly, onAnomaly);
    manager = new SessionManager({ store: memoryStore(), secrets: [SECRET] });
  });

  afterEach(() => {
    diagnostics.unsubscribe(CHANNELS.anomaly, onAnomaly);
  });

  async function boundSession(bind: ReturnType<typeof createBindingCheck>, client = { userAgent: FIREFOX, ip: '203.0.113.7' }) {
    const session = manager.create();
    expect(bind(session, client)).toEqual({ changed: [], action: 'none' });
    await manager.save(session);
    return (await manager.load(session.id))!;
  }

  it('binds on first use and stays quiet while the client and its network stay the same', async () => {
    const bind = createBindingCheck({ key: KEY });
    const session = await boundSession(bind);
    expect(bind(session, { userAgent: FIREFOX, ip: '203.0.113.99' })).toEqual({ changed: [], action: 'none' });
    expect(session.isDirty).toBe(false);
    expect(events).toEqual([]);
  });

  it('a User-Agent or network change raises an anomaly event, not a failure, and rebinds', async () => {
    const bind = createBindingCheck({ key: KEY });
    const session = await boundSession(bind);
    expect(bind(session, { userAgent: CURL, ip: '198.51.100.1' })).toEqual({ changed: ['user-agent', 'network'], action: 'event' });
    expect(events).toEqual([{ signals: ['user-agent', 'network'], action: 'event', at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) as unknown, ip: '198.51.100.1' }]);
    await manager.save(session);
    const again = (await manager.load(session.id))!;
    expect(bind(again, { userAgent: CURL, ip: '198.51.100.1' }).action).toBe('none');
    expect(events).toHaveLength(1);
  });

  it("onChange: 'destroy' asks the caller to end the session", async () => {
    const bind = createBindingCheck({ key: KEY, onChange: 'destroy', signals: ['user-agent'] });
    const session = await boundSession(bind);
    expect(bind(session, { userAgent: FIREFOX, ip: '198.51.100.1' }).action).toBe('none');
    const result = bind(session, { userAgent: CURL, ip: '203.0.113.7' });
    expect(result).toEqual({ changed: ['user-agent'], action: 'destroy' });
    await manager.destroy(session);
    expect(await manager.load(session.id)).toBeNull();
    expect(events).toMatchObject([{ signals: ['user-agent'], action: 'destroy', ip: '203.0.113.7' }]);
  });

  it('stores only keyed fingerprints; events carry no User-Agent, no fingerprint and no bound address, only the address the request came from', async () => {
    const bind = createBindingCheck({ key: KEY });
    const session = await boundSession(bind);
    const fingerprints = Object.values(session.get('_binding') as Record<string, string>);
    bind(session, { userAgent: CURL, ip: '2001:db8:1234::1' });
    const stored = JSON.stringify(session.toJSON());
    for (const text of [FIREFOX, CURL, '203.0.113', '2001:db8']) expect(stored).not.toContain(text);
    for (const text of [FIREFOX, CURL, '203.0.113', ...fingerprints]) expect(JSON.stringify(events)).not.toContain(text);
    expect(events.map((event) => event.ip)).toEqual(['2001:db8:1234::1']);
  });

  it("an anomaly event names the session's principal and, when the caller gives it, its handle and the manager's time", async () => {
    const bind = createBindingCheck({ key: KEY });
    const session = await boundSession(bind);
    session.userId = 'ada';
    await manager.save(session);
    const [listed] = await manager.listUserSessions('ada');
    bind(session, { userAgent: CURL, ip: '198.51.100.1' }, () => manager.eventSubject(session));
    expect(events).toEqual([{ signals: ['user-agent', 'network'], action: 'event', at: expect.any(String) as unknown, userId: 'ada', handle: listed?.handle, ip: '198.51.100.1' }]);
    expect(manager.handleOf(session)).toBe(listed?.handle);
  });

  it('compares network prefixes: IPv4 /24, IPv6 /48, IPv4-mapped IPv6 as IPv4', () => {
    expect(networkOf('203.0.113.7', 24, 48)).toBe(networkOf('203.0.113.200', 24, 48));
    expect(networkOf('203.0.113.7', 24, 48)).not.toBe(networkOf('203.0.114.7', 24, 48));
    expect(networkOf('::ffff:203.0.113.7', 24, 48)).toBe(networkOf('203.0.113.1', 24, 48));
    expect(networkOf('2001:db8:1234:5678::1', 24, 48)).toBe(networkOf('2001:db8:1234:ffff::2', 24, 48));
    expect(networkOf('2001:db8:1234::1', 24, 48)).not.toBe(networkOf('2001:db8:1235::1', 24, 48));
    expect(networkOf('not an ip', 24, 48)).toBeNull();
    expect(networkOf(undefined, 24, 48)).toBeNull();
  });

  it('a missing signal neither raises an event nor erases the binding', async () => {
    const bind = createBindingCheck({ key: KEY });
    const session = await boundSession(bind);
    expect(bind(session, {}).action).toBe('none');
    expect(bind(session, { userAgent: CURL }).changed).toEqual(['user-agent']);
  });

  it('validates its options once, naming them', () => {
    expect(() => createBindingCheck({ key: 'short' })).toThrow(/key/);
    expect(() => createBindingCheck({ key: KEY, onChange: 'block' as 'event' })).toThrow(/onChange/);
    expect(() => createBindingCheck({ key: KEY, signals: [] })).toThrow(/signals/);
    expect(() => createBindingCheck({ key: KEY, ipv4Prefix: 33 })).toThrow(/ipv4Prefix/);
  });

  it('takes the adapters\' session objects as they are (type check)', () => {
    const bind = createBindingCheck({ key: KEY });
    const inMiddleware = (session: SessionObject, userAgent: string | undefined, ip: string | undefined) => bind(session, { userAgent, ip });
    expect(typeof inMiddleware).toBe('function');
  });

  it('adapters take the client address from the socket, and from X-Forwarded-For (leftmost) only behind a trusted proxy', () => {
    const direct = new SessionRuntime({ manager, binding: { key: KEY } });
    const proxied = new SessionRuntime({ manager, trustProxy: true, binding: { key: KEY } });
    expect(direct.clientIp('198.51.100.1', '203.0.113.7')).toBe('203.0.113.7');
    expect(proxied.clientIp('198.51.100.1, 10.0.0.1', '10.0.0.2')).toBe('198.51.100.1');
    expect(proxied.clientIp(undefined, '10.0.0.2')).toBe('10.0.0.2');
    expect(firstForwardedFor('[2001:db8::1]:443, 10.0.0.1')).toBe('2001:db8::1');
    expect(firstForwardedFor('198.51.100.1:5555')).toBe('198.51.100.1');
    expect(firstForwardedFor(' , 10.0.0.1')).toBeNull();
    expect(() => new SessionRuntime({ manager, binding: { key: KEY, onChange: 'block' as 'event' } })).toThrow(/"binding\.onChange"/);
  });
});
