// Helpers for the browser tests: a real xdn-node on loopback and headless
// Chromium (Debian's, driven by playwright-core), both stopped at the end of
// the test whatever happens. Every wait is bounded and says what it waited
// for when it gives up.
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import nodeHttp from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const SOURCE_ROOT = process.env.XDN_SOURCE_ROOT || path.resolve(here, '..', '..');
export const BUILD_ROOT = process.env.XDN_BUILD_ROOT || path.join(SOURCE_ROOT, 'build');
export const NODE_BINARY = path.join(BUILD_ROOT, 'apps', 'node', 'xdn-node');
export const MANAGER_BINARY = path.join(BUILD_ROOT, 'apps', 'manager', 'xdn-manager');
export const CHROMIUM = process.env.XDN_CHROMIUM || '/usr/bin/chromium';

const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--disable-background-networking',
  '--allow-loopback-in-peer-connection',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  '--autoplay-policy=no-user-gesture-required',
];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls fn() until it returns a truthy value; throws after timeoutMs with
 * what(lastValue) in the message. */
export async function waitFor(fn, { timeoutMs, what, intervalMs = 250 }) {
  const deadline = Date.now() + timeoutMs;
  let last;
  let lastError;
  for (;;) {
    try {
      last = await fn();
      if (last)
        return last;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() >= deadline)
      break;
    await sleep(intervalMs);
  }
  const detail = typeof what === 'function' ? what(last, lastError) : what;
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${detail}` +
    (lastError ? ` (last error: ${lastError.message})` : ''));
}

function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    socket.on('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}

/** GET/POST/... without throwing on HTTP errors: { status, headers, text }. */
export async function http(method, url, { body, headers, timeoutMs = 5000 } = {}) {
  const response = await fetch(url, { method, body, headers, signal: AbortSignal.timeout(timeoutMs) });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

/** Every process this file started, so that an exit kills what is left. */
const liveProcesses = new Set();
process.on('exit', () => {
  for (const child of liveProcesses) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** An xdn-node on loopback with ports of its own and a log file. */
export class XdnNode {
  constructor({ demo = false, args = [] } = {}) {
    this.demo = demo;
    this.extraArgs = args;
    this.child = null;
    this.exited = null;
    this.binary = NODE_BINARY;
    this.name = 'xdn-node';
    this.readyPath = '/api/v1/streams';
  }

  /** The command line after the ports are chosen. */
  async processArgs() {
    this.srtPort = await freeUdpPort();
    const args = ['--http-port', String(this.httpPort), '--srt-port', String(this.srtPort),
      '--ice-addresses', '127.0.0.1',
      // XDN_NODE_EGRESS (fanout or webrtcbin) runs a test against either WHEP egress.
      ...(process.env.XDN_NODE_EGRESS ? ['--egress', process.env.XDN_NODE_EGRESS] : []),
      ...this.extraArgs];
    if (this.demo)
      args.push('--demo');
    return args;
  }

  async start({ timeoutMs = 20000 } = {}) {
    if (!fs.existsSync(this.binary))
      throw new Error(`${this.binary} is missing: build the ${this.name} target first`);
    this.httpPort = await freeTcpPort();
    this.url = `http://127.0.0.1:${this.httpPort}`;
    const args = await this.processArgs();
    const logDir = path.join(BUILD_ROOT, 'tests', 'logs');
    fs.mkdirSync(logDir, { recursive: true });
    this.logPath = path.join(logDir, `${this.name}-browser-${this.httpPort}.log`);
    const log = fs.openSync(this.logPath, 'w');
    // Its own process group, so that stop() reaches everything it started.
    this.child = spawn(this.binary, args, { stdio: ['ignore', log, log], detached: true });
    fs.closeSync(log);
    liveProcesses.add(this.child);
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => {
      liveProcesses.delete(this.child);
      resolve({ code, signal });
    }));
    this.child.once('exit', (code, signal) => { this.exitStatus = { code, signal }; });

    await waitFor(async () => {
      if (this.exitStatus)
        throw new Error(`${this.name} exited (${JSON.stringify(this.exitStatus)}): ${this.logTail()}`);
      return (await http('GET', this.url + this.readyPath, { timeoutMs: 1000 })).status === 200;
    }, { timeoutMs, what: `${this.name} on port ${this.httpPort} to answer GET ${this.readyPath}` })
      .catch((e) => {
        if (this.exitStatus)
          throw new Error(`${this.name} exited (${JSON.stringify(this.exitStatus)}) while starting:\n${this.logTail()}`);
        throw e;
      });
    return this;
  }

  async stop({ timeoutMs = 10000 } = {}) {
    if (!this.child || this.exitStatus)
      return;
    try {
      process.kill(-this.child.pid, 'SIGTERM');
    } catch {
      return;
    }
    const timer = sleep(timeoutMs).then(() => 'timeout');
    if ((await Promise.race([this.exited, timer])) === 'timeout') {
      try {
        process.kill(-this.child.pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
      await this.exited;
    }
  }

  /** kill -9 of the node and everything it started (a crash, not a stop). */
  async kill() {
    if (!this.child || this.exitStatus)
      return;
    try {
      process.kill(-this.child.pid, 'SIGKILL');
    } catch {
      return;
    }
    await this.exited;
  }

  whepUrl(name) {
    return `${this.url}/whep/${name}`;
  }

  logTail(lines = 40) {
    try {
      return fs.readFileSync(this.logPath, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** The stream's description, or null when it is not live. */
  async stream(name) {
    const r = await http('GET', `${this.url}/api/v1/streams/${name}`);
    return r.status === 200 ? JSON.parse(r.text) : null;
  }

  async waitStream(name, { timeoutMs = 15000, tracks = 1 } = {}) {
    let last = null;
    return waitFor(async () => {
      last = await this.stream(name);
      return last && Array.isArray(last.tracks) && last.tracks.length >= tracks && last;
    }, {
      timeoutMs,
      what: () => `stream ${name} to be live with ${tracks} track(s) (last: ${JSON.stringify(last)})` +
        `\n--- xdn-node log (tail) ---\n${this.logTail()}`,
    });
  }

  async waitStreamGone(name, { timeoutMs = 10000 } = {}) {
    return waitFor(async () => (await this.stream(name)) === null,
      { timeoutMs, what: `stream ${name} to end` });
  }
}

/** An xdn-manager on loopback (SQLite in @dbPath) with a port of its own. */
export class XdnManager extends XdnNode {
  constructor({ dbPath, args = [] }) {
    super({ args });
    this.dbPath = dbPath;
    this.binary = MANAGER_BINARY;
    this.name = 'xdn-manager';
    this.readyPath = '/healthz';
  }

  async processArgs() {
    return ['--http-address', '127.0.0.1', '--http-port', String(this.httpPort),
      '--db', `sqlite:${this.dbPath}`, ...this.extraArgs];
  }

  /** GET of a manager API path: { status, body (parsed JSON or null) }. */
  async api(pathname) {
    const r = await http('GET', this.url + '/api/v1' + pathname);
    let body = null;
    try {
      body = JSON.parse(r.text);
    } catch {
      // not JSON
    }
    return { status: r.status, body };
  }
}

/** Loads playwright-core from this folder's node_modules, with a clear
 * message when `npm ci` was not run. */
async function playwright() {
  try {
    return await import('playwright-core');
  } catch (e) {
    throw new Error(`playwright-core is not installed: run \`npm ci\` in ${here} (${e.message})`);
  }
}

/** Headless Chromium with fake camera and microphone and a fresh profile. */
export async function launchChromium() {
  const { chromium } = await playwright();
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 30000,
  });
}

/** A page in a browser context of its own (its own cookies, camera grant
 * and WebRTC stack), whose console and errors are kept for the report. */
export async function openPage(browser, url, label) {
  const context = await browser.newContext({ permissions: ['camera', 'microphone'] });
  const page = await context.newPage();
  page.xdnLog = [];
  const keep = (line) => {
    page.xdnLog.push(`[${label}] ${line}`);
    if (page.xdnLog.length > 200)
      page.xdnLog.shift();
  };
  page.on('console', (m) => keep(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => keep(`page error: ${e.message}`));
  page.on('requestfailed', (r) => keep(`request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => {
    if (r.status() >= 400)
      keep(`HTTP ${r.status()} ${r.request().method()} ${r.url()}`);
  });
  await page.goto(url, { timeout: 15000 });
  return page;
}

/** The page's test hook (window.xdnPlayer or window.xdnPublisher), copied. */
export function hook(page, name) {
  return page.evaluate((n) => JSON.parse(JSON.stringify(window[n] || null)), name);
}

/** Waits until predicate(hookValue) holds; the error carries the last value,
 * the page's console and the node's log. */
export async function waitForHook(page, name, predicate, { timeoutMs, what, node }) {
  let last = null;
  try {
    return await waitFor(async () => {
      last = await hook(page, name);
      return last && predicate(last) ? last : null;
    }, { timeoutMs, what: () => `${what} (last ${name}: ${JSON.stringify(last)})` });
  } catch (e) {
    e.message += `\n--- page log ---\n${(page.xdnLog || []).slice(-30).join('\n')}` +
      (node ? `\n--- xdn-node log (tail) ---\n${node.logTail()}` : '');
    throw e;
  }
}

/** Starts a node and Chromium for one test and stops both after it. */
export async function setup(t, nodeOptions) {
  const node = new XdnNode(nodeOptions);
  t.after(() => node.stop());
  await node.start();
  const browser = await launchChromium();
  t.after(() => browser.close());
  return { node, browser };
}

/** The camera format the publisher pages ask for: small, to spare the CPU. */
export const CAMERA = 'width=640&height=360&fps=30';

export function summary(status) {
  const l = status.latency || {};
  return `state=${status.state} framesDecoded=${status.framesDecoded} ` +
    `resolution=${status.width}x${status.height} fps=${status.fps} ` +
    `latency last=${l.last} p50=${l.p50} p95=${l.p95} readings=${l.count} unreadable=${l.unreadable} ` +
    `reconnects=${status.reconnects}`;
}

const WEB_ROOT = path.join(SOURCE_ROOT, 'apps', 'web');
const CONTENT_TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };

/** A stand-in for the stream manager's player-facing API, on loopback:
 * GET /api/v1/streams/{name}/subscribe answers what place() or refuse() last
 * set, and every request is recorded (time, stream, region). With
 * { pages: true } it also serves the player page from apps/web and answers
 * GET /api/v1/config with {"role":"manager"}, as a manager does. */
export class FakeManager {
  constructor({ pages = false } = {}) {
    this.pages = pages;
    this.answer = { status: 404, body: { error: 'stream not live' } };
    this.requests = [];
    this.server = null;
  }

  /** Hands out node id with its WHEP URL from now on. */
  place(id, whep) {
    this.answer = { status: 200, body: { node: id, whep } };
  }

  /** Refuses subscribes from now on (404: stream not live, 503: no edge). */
  refuse(status = 404, error = 'stream not live') {
    this.answer = { status, body: { error } };
  }

  subscribes() {
    return this.requests.filter((r) => r.kind === 'subscribe');
  }

  async start() {
    this.server = nodeHttp.createServer((req, res) => this.handle(req, res));
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', resolve);
    });
    this.url = `http://127.0.0.1:${this.server.address().port}`;
    return this;
  }

  stop() {
    if (!this.server)
      return Promise.resolve();
    this.server.closeAllConnections?.();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  handle(req, res) {
    const url = new URL(req.url, 'http://manager');
    const send = (status, type, body) => {
      res.writeHead(status, { 'Content-Type': type, 'Access-Control-Allow-Origin': '*', 'Cache-Control': 'no-store' });
      res.end(body);
    };
    const json = (status, body) => send(status, 'application/json', JSON.stringify(body));

    const subscribe = url.pathname.match(/^\/api\/v1\/streams\/(.+)\/subscribe$/);
    if (req.method === 'GET' && subscribe) {
      this.requests.push({ kind: 'subscribe', t: Date.now(), stream: decodeURIComponent(subscribe[1]),
        region: url.searchParams.get('region') });
      return json(this.answer.status, this.answer.body);
    }
    this.requests.push({ kind: 'other', t: Date.now(), path: url.pathname });
    if (this.pages && req.method === 'GET') {
      if (url.pathname === '/api/v1/config')
        return json(200, { role: 'manager' });
      let file = null;
      if (url.pathname.startsWith('/play/'))
        file = 'play.html';
      else if (url.pathname.startsWith('/static/'))
        file = url.pathname.slice('/static/'.length);
      const resolved = file && path.resolve(WEB_ROOT, file);
      if (resolved && resolved.startsWith(WEB_ROOT + path.sep) && fs.existsSync(resolved))
        return send(200, CONTENT_TYPES[path.extname(resolved)] || 'application/octet-stream', fs.readFileSync(resolved));
    }
    return json(404, { error: `no such resource: ${url.pathname}` });
  }
}
