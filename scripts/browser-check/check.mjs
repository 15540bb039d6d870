#!/usr/bin/env node
// The browser check: the official Millicast JS SDK's View, in headless Chromium, plays
// relive-testkit's video (frames counted with requestVideoFrameCallback) while the fault script
// (faults.json) is played through the control API; then relive's own viewer (examples/watch, with
// real WebRTC) on the same script. Each step is judged by the testkit's wire log (what the viewer
// did on the wire) plus what the viewer itself reported, and printed as a Markdown table.
//
//   node scripts/browser-check/check.mjs [--viewer sdk|relive|both] [--script PATH]
//
// Installs what is missing: the npm packages (npm install here), Debian's chromium (apt-get), and
// builds relive-testkit and the watch example with cargo. Exit code 1 if the SDK never played.

import { execFileSync, execSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const target = process.env.CARGO_TARGET_DIR ?? path.join(root, 'target');
const CHROMIUM = '/usr/bin/chromium';
/** How long the last step is watched. */
const TAIL_MS = 8000;
/** How long a viewer may take to play before the script starts. */
const FIRST_PLAY_MS = 30000;

const argv = process.argv.slice(2);
const option = (name, fallback) => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] ? argv[i + 1] : fallback;
};
const which = option('--viewer', 'both');
const scriptPath = path.resolve(option('--script', path.join(here, 'faults.json')));
const script = JSON.parse(readFileSync(scriptPath, 'utf8'));

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (...what) => console.error('[check]', ...what);

function ensureInstalled() {
  const missing = ['@millicast/sdk', 'playwright-core'].some(
    (name) => !existsSync(path.join(here, 'node_modules', name, 'package.json')));
  if (missing) {
    log('npm install');
    execSync('npm install --no-audit --no-fund', { cwd: here, stdio: 'inherit' });
  }
  if (!existsSync(CHROMIUM)) {
    log('apt-get install chromium');
    execSync('apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium',
      { stdio: 'inherit', shell: '/bin/bash' });
  }
  log('cargo build relive-testkit');
  execFileSync('cargo', ['build', '--features', 'testkit-bin', '--bin', 'relive-testkit'],
    { cwd: root, stdio: 'inherit' });
  if (which !== 'sdk') {
    log('cargo build examples/watch');
    execFileSync('cargo', ['build', '--features', 'webrtc,testkit', '--example', 'watch'],
      { cwd: root, stdio: 'inherit' });
  }
}

/** Starts relive-testkit on a free port with `cam` published; resolves with its base URL. */
async function startTestkit(wireLog) {
  const child = spawn(path.join(target, 'debug', 'relive-testkit'),
    ['--listen', '127.0.0.1:0', '--publish', 'cam', '--wire-log', wireLog, '--log', 'warn'],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  const base = await new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error('relive-testkit printed no address')), 15000);
    child.stderr.on('data', (data) => {
      if (process.env.CHECK_DEBUG) process.stderr.write(data);
      text += data;
      // Only a whole address: stderr may arrive in pieces.
      const found = text.match(/listening on (http:\/\/\S+)\s/);
      if (found) { clearTimeout(timer); resolve(found[1]); }
    });
    child.on('exit', (code) => reject(new Error(`relive-testkit exited with ${code}: ${text}`)));
  });
  log(`relive-testkit at ${base}`);
  return { child, base };
}

function wireRecords(wireLog) {
  if (!existsSync(wireLog)) return [];
  return readFileSync(wireLog, 'utf8').split('\n').filter((line) => line.trim())
    .map((line) => JSON.parse(line));
}

async function control(base, step) {
  const { at, action, ...fields } = step;
  const response = await fetch(`${base}/control/${action}`, { method: 'POST', body: JSON.stringify(fields) });
  if (!response.ok) throw new Error(`control ${action}: ${response.status} ${await response.text()}`);
}

/** Plays the script through the control API; `sample()` is read just before each step and at the end. */
async function play(base, sample) {
  const start = Date.now();
  const marks = [];
  for (const step of script.steps) {
    const wait = start + step.at * 1000 - Date.now();
    if (wait > 0) await sleep(wait);
    marks.push({ step, wall: Date.now(), before: await sample() });
    await control(base, step);
  }
  await sleep(TAIL_MS);
  marks.push({ step: null, wall: Date.now(), before: await sample() });
  return marks;
}

/** `a → b → c → b → c → b → c` as `a → (b → c)×3`: retry loops stay readable. */
function sequence(items) {
  const out = [];
  for (let i = 0; i < items.length;) {
    let repeats = 1;
    while (items[i + 2 * repeats] === items[i] && items[i + 2 * repeats + 1] === items[i + 1]
      && i + 2 * repeats + 1 < items.length) repeats++;
    if (repeats > 1) {
      out.push(`(${items[i]} → ${items[i + 1]})×${repeats}`);
      i += 2 * repeats;
    } else {
      out.push(items[i]);
      i++;
    }
  }
  return out.join(' → ');
}

const count = (items) => {
  const counts = new Map();
  for (const item of items) counts.set(item, (counts.get(item) ?? 0) + 1);
  return [...counts].map(([item, n]) => (n > 1 ? `${item}×${n}` : `${item}`)).join(' ');
};

/** What the wire log shows in [from, to): the viewer's Director calls, sockets, views, peers, pings. */
function wireSummary(records, from, to) {
  const w = records.filter((r) => r.t_ms >= from && r.t_ms < to && r.event !== 'action');
  const parts = [];
  const director = w.filter((r) => r.event === 'director').map((r) => r.status);
  if (director.length) parts.push(`director ${count(director)}`);
  const closed = w.filter((r) => r.event === 'socket_closed').map((r) => r.how);
  if (closed.length) parts.push(`ws closed ${count(closed)}`);
  const opened = w.filter((r) => r.event === 'socket_open').length;
  if (opened) parts.push(`ws open×${opened}`);
  const views = w.filter((r) => r.event === 'view');
  const accepted = views.filter((r) => r.accepted);
  const refused = views.filter((r) => !r.accepted).map((r) => r.error);
  if (accepted.length) parts.push(`view ok×${accepted.length} at +${((accepted[0].t_ms - from) / 1000).toFixed(1)} s`);
  if (refused.length) parts.push(`view refused ${count(refused)}`);
  const peers = w.filter((r) => r.event === 'peer' && r.state !== 'answered').map((r) => `pc ${r.state}`);
  if (peers.length) parts.push(count(peers));
  const whep = w.filter((r) => r.event === 'whep').map((r) => `${r.method} ${r.status}`);
  if (whep.length) parts.push(`WHEP ${count(whep)}`);
  const pings = w.filter((r) => r.event === 'ping').length;
  parts.push(pings ? `pings ${pings}` : 'no pings');
  return parts.join(', ');
}

/** The windows of the script in the wire log's time: from each step's action record to the next. */
function windows(records, marks) {
  const actions = records.filter((r) => r.event === 'action');
  const steps = marks.filter((m) => m.step);
  return steps.map((mark, i) => {
    const from = actions[i]?.t_ms ?? 0;
    const to = actions[i + 1]?.t_ms ?? from + (marks[i + 1].wall - mark.wall);
    return { mark, next: marks[i + 1], from, to };
  });
}

function describe(step) {
  const { at, action, ...fields } = step;
  const rest = Object.entries(fields).filter(([k]) => k !== 'stream').map(([k, v]) => `${k}=${v}`).join(' ');
  return rest ? `${action} ${rest}` : action;
}

async function checkSdk() {
  const { chromium } = await import('playwright-core');
  const dir = mkdtempSync(path.join(tmpdir(), 'relive-browser-check-'));
  const wireLog = path.join(dir, 'wire.jsonl');
  const { child, base } = await startTestkit(wireLog);
  // The page comes from another origin than the testkit's: CORS is part of the check.
  const page = readFileSync(path.join(here, 'page.html'));
  const sdk = readFileSync(path.join(here, 'node_modules/@millicast/sdk/dist/millicast.umd.js'));
  const server = createServer((request, response) => {
    const body = request.url.startsWith('/sdk.js') ? sdk : page;
    response.writeHead(200, { 'content-type': request.url.startsWith('/sdk.js') ? 'text/javascript' : 'text/html' });
    response.end(body);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const pageUrl = `http://localhost:${server.address().port}/?testkit=${encodeURIComponent(base)}`;
  const context = await chromium.launchPersistentContext(path.join(dir, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
      // The testkit's media is on 127.0.0.1: Chromium gathers no loopback candidates without it.
      '--allow-loopback-in-peer-connection'],
  });
  try {
    const tab = context.pages()[0] ?? await context.newPage();
    tab.on('console', (message) => { if (message.type() === 'error' || process.env.CHECK_DEBUG) log('page:', message.text()); });
    await tab.goto(pageUrl);
    const sample = () => tab.evaluate(() => ({ frames: window.check.frames, events: window.check.events.length }));
    const started = Date.now();
    let state = await sample();
    while (state.frames === 0 && Date.now() - started < FIRST_PLAY_MS) {
      await sleep(250);
      state = await sample();
    }
    const error = await tab.evaluate(() => window.check.error);
    if (state.frames === 0) {
      const events = await tab.evaluate(() => window.check.events.map((e) => e.what));
      const wire = wireRecords(wireLog).map((r) => JSON.stringify(r));
      log('SDK events:', events.join(' | '));
      log('wire log:\n' + wire.join('\n'));
      throw new Error(`the SDK played no frame in ${FIRST_PLAY_MS} ms${error ? `: ${error}` : ''}`);
    }
    const firstFrameMs = Date.now() - started;
    log(`SDK playing: ${state.frames} frames after ${firstFrameMs} ms`);
    await sleep(2000);
    const marks = await play(base, sample);
    const events = await tab.evaluate(() => window.check.events);
    const records = wireRecords(wireLog);
    const rows = windows(records, marks).map(({ mark, next, from, to }) => {
      const frames = next.before.frames - mark.before.frames;
      const sdkEvents = events.slice(mark.before.events, next.before.events).map((e) => e.what);
      return {
        step: mark.step,
        cell: `${wireSummary(records, from, to)}; frames +${frames}${sdkEvents.length ? `; SDK: ${count(sdkEvents)}` : ''}`,
      };
    });
    return { rows, firstFrameMs, firstFrames: marks[0].before.frames, totalFrames: marks.at(-1).before.frames };
  } finally {
    await context.close();
    server.close();
    child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

async function checkRelive() {
  const dir = mkdtempSync(path.join(tmpdir(), 'relive-browser-check-'));
  const wireLog = path.join(dir, 'wire.jsonl');
  const { child, base } = await startTestkit(wireLog);
  const watch = spawn(path.join(target, 'debug', 'examples', 'watch'),
    ['--json', '--account', 'testkit', '--stream', 'cam', '--director', base],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  const states = [];
  let buffered = '';
  watch.stdout.on('data', (data) => {
    buffered += data;
    const lines = buffered.split('\n');
    buffered = lines.pop();
    for (const line of lines) {
      try {
        const event = JSON.parse(line);
        if (event.event === 'state') {
          const reason = event.reason === 'backoff elapsed' ? '' : ` (${event.reason})`;
          states.push({ wall: Date.now(), what: `${event.to}${reason}` });
        }
      } catch { /* not a JSON line */ }
    }
  });
  try {
    const started = Date.now();
    while (!states.some((s) => s.what.startsWith('playing')) && Date.now() - started < FIRST_PLAY_MS) await sleep(100);
    if (!states.length) throw new Error('relive viewer reported nothing');
    log(`relive playing after ${Date.now() - started} ms`);
    await sleep(2000);
    const marks = await play(base, async () => ({ states: states.length }));
    const records = wireRecords(wireLog);
    const rows = windows(records, marks).map(({ mark, next, from, to }) => {
      const seen = states.slice(mark.before.states, next.before.states).map((s) => s.what);
      return { step: mark.step, cell: `${wireSummary(records, from, to)}; relive: ${seen.length ? sequence(seen) : 'no change'}` };
    });
    return { rows };
  } finally {
    watch.kill('SIGTERM');
    child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

ensureInstalled();
const begun = Date.now();
const sdk = which === 'relive' ? null : await checkSdk().catch((e) => { log('SDK:', e.message); return { error: e.message }; });
const relive = which === 'sdk' ? null : await checkRelive().catch((e) => { log('relive:', e.message); return { error: e.message }; });
const columns = [['official JS SDK (@millicast/sdk, Chromium)', sdk], ['relive (examples/watch, webrtc)', relive]]
  .filter(([, result]) => result);
if (sdk?.firstFrames) {
  console.log(`The SDK painted its first frame ${sdk.firstFrameMs} ms after the page loaded, ` +
    `${sdk.firstFrames} frames before the first step and ${sdk.totalFrames} in all.\n`);
}
console.log(`| at | action | ${columns.map(([name]) => name).join(' | ')} |`);
console.log(`|---|---|${columns.map(() => '---').join('|')}|`);
script.steps.forEach((step, i) => {
  const cells = columns.map(([, result]) => result.error ? `error: ${result.error}` : result.rows[i].cell);
  console.log(`| ${step.at} s | ${describe(step)} | ${cells.join(' | ')} |`);
});
log(`checked in ${((Date.now() - begun) / 1000).toFixed(0)} s`);
process.exit(sdk && (sdk.error || !sdk.firstFrames) ? 1 : 0);
