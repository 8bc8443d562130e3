// Glass-to-glass latency benchmark with Chromium as the viewer: the node's
// demo (720p30 H.264, 1.5 Mbit/s, stamped) played on the player page, which
// reads the stamp from a canvas on every frame. Reports the page's latency
// p50/p95 (over its recent readings) sampled through the run, and the join
// time (page load to first decoded frame). Run on demand:
//
//   unshare -n bash -c 'ip link set lo up; node tests/bench/latency-chromium.mjs 60'
import { XdnNode, hook, launchChromium, openPage, waitFor } from '../browser/xdn.mjs';

const seconds = Number(process.argv[2] || 60);
const node = new XdnNode({ demo: true });
let browser;
try {
  await node.start();
  await node.waitStream('demo', { timeoutMs: 30000 });
  browser = await launchChromium();
  const joins = [];
  for (let i = 0; i < 3; i++) {
    const t0 = Date.now();
    const page = await openPage(browser, `${node.url}/play/demo`, 'join');
    await waitFor(async () => (await hook(page, 'xdnPlayer'))?.framesDecoded > 0,
      { timeoutMs: 15000, what: 'first decoded frame' });
    joins.push(Date.now() - t0);
    await page.context().close();
  }
  const page = await openPage(browser, `${node.url}/play/demo`, 'player');
  const p50s = [], p95s = [];
  let last = null;
  for (let s = 0; s < seconds; s++) {
    await new Promise((r) => setTimeout(r, 1000));
    last = await hook(page, 'xdnPlayer');
    if (s >= 5 && last?.latency?.p50 != null) {
      p50s.push(last.latency.p50);
      p95s.push(last.latency.p95);
    }
  }
  const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  console.log('| viewer | frames decoded | readings | unreadable | p50 ms (median of samples) | p95 ms (worst sample) | join ms (median of 3) |');
  console.log('|---|---|---|---|---|---|---|');
  console.log(`| chromium (player page) | ${last.framesDecoded} | ${last.latency.count} | ${last.latency.unreadable} | ` +
    `${median(p50s).toFixed(1)} | ${Math.max(...p95s).toFixed(1)} | ${median(joins)} |`);
} finally {
  if (browser)
    await browser.close();
  await node.stop();
}
